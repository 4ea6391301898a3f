"""A small real-photo dataset in the LLaVA layout, for smoke runs and tests of the training recipe.

Why: the training pipeline should meet real JPEG/PNG files of different sizes, modes (RGB, grey,
RGBA) and aspect ratios, and conversations written by a person, not only synthetic scenes. The
photos are the sample images that ship with scikit-image (installed with the `dev` extra); the
captions and questions below were written for them by hand.

`write_photo_dataset(folder)` writes `images/*`, `captions.json` (stage 1, template `plain`) and
`conversations.json` (stage 2, template `vicuna_v1`, with a few text-only records mixed in).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mqt_vlm.errors import MQTError

# file in skimage/data -> (caption, [(question, answer), ...])
PHOTOS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "astronaut.png": (
        "A smiling astronaut in an orange flight suit holding a helmet, with an American flag behind her.",
        [("What is the person wearing?", "An orange flight suit."), ("What is in the background?", "An American flag and a model of a spacecraft.")],
    ),
    "chelsea.png": (
        "A tabby cat with green eyes looking to the side.",
        [("What animal is this?", "A cat."), ("What colour are its eyes?", "Green.")],
    ),
    "coffee.png": (
        "A red cup of espresso on a red saucer with a spoon, on a wooden table.",
        [("What drink is in the cup?", "Coffee, an espresso."), ("What is next to the cup?", "A metal spoon on the saucer.")],
    ),
    "camera.png": (
        "A black and white photo of a man in a dark coat filming with a camera on a tripod in a field.",
        [("Is this photo in colour?", "No, it is black and white."), ("What is the man doing?", "He is looking through a camera on a tripod.")],
    ),
    "coins.png": (
        "Twenty-four old coins laid out in four rows on a dark background.",
        [("How many rows of coins are there?", "Four."), ("What is the background colour?", "Dark grey, almost black.")],
    ),
    "rocket.jpg": (
        "A white rocket standing on its launch pad between towers at dusk, lit by floodlights.",
        [("What is on the launch pad?", "A rocket."), ("Is it day or night?", "Dusk, the sky is dark blue.")],
    ),
    "motorcycle_left.png": (
        "A red motorcycle parked in a garage in front of shelves full of boxes.",
        [("What vehicle is shown?", "A motorcycle."), ("What colour is its fuel tank?", "Red.")],
    ),
    "retina.jpg": (
        "A colour photograph of the back of a human eye, showing the retina and its blood vessels.",
        [("What part of the body is this?", "The retina of an eye."), ("What are the dark red lines?", "Blood vessels.")],
    ),
    "ihc.png": (
        "A microscope image of stained tissue, with brown-stained cell membranes and blue nuclei.",
        [("What kind of image is this?", "A microscope image of stained tissue."), ("Which two colours dominate?", "Brown and blue.")],
    ),
    "page.png": (
        "A scanned page of a book titled Region-based segmentation, with a paragraph about coins.",
        [("What is the title on the page?", "Region-based segmentation."), ("Is there text in this image?", "Yes, a paragraph of printed text.")],
    ),
    "text.png": (
        "Handwritten mathematical formulas on lined paper, photographed at an angle.",
        [("What is written on the paper?", "Mathematical formulas, written by hand.")],
    ),
    "horse.png": (
        "The black silhouette of a horse standing, facing right, on a white background.",
        [("What animal is shown?", "A horse."), ("Which way is it facing?", "To the right.")],
    ),
    "moon.png": (
        "A grey close-up of the surface of the moon covered in craters.",
        [("What is shown in this image?", "The surface of the moon with craters.")],
    ),
    "hubble_deep_field.jpg": (
        "Hundreds of distant galaxies of different colours scattered on a black sky.",
        [("What are the bright spots?", "Distant galaxies."), ("What colour is the background?", "Black.")],
    ),
}

TEXT_ONLY: list[tuple[str, str]] = [
    ("What is the capital of France?", "Paris."),
    ("Name a primary colour.", "Red."),
    ("How many legs does a spider have?", "Eight."),
    ("What is two plus three?", "Five."),
]


def _skimage_data_dir() -> Path:
    try:
        import skimage.data  # lazily: scikit-image is a dev extra
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MQTError("The photo dataset needs scikit-image: pip install 'mqt-vlm[dev]'.") from exc
    return Path(skimage.data.__file__).parent


def write_photo_dataset(folder: Path) -> Path:
    """Write the dataset under `folder` (created if needed) and return it."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    source = _skimage_data_dir()
    captions, conversations = [], []
    for name, (caption, qa) in PHOTOS.items():
        shutil.copyfile(source / name, folder / "images" / name)
        stem = name.rsplit(".", 1)[0]
        captions.append({
            "id": f"cap-{stem}",
            "image": name,
            "conversations": [{"from": "human", "value": "Describe the image briefly.\n<image>"}, {"from": "gpt", "value": caption}],
        })
        turns = []
        for i, (question, answer) in enumerate(qa):
            turns.append({"from": "human", "value": f"<image>\n{question}" if i == 0 else question})
            turns.append({"from": "gpt", "value": answer})
        conversations.append({"id": f"qa-{stem}", "image": name, "conversations": turns})
    for i, (question, answer) in enumerate(TEXT_ONLY):
        conversations.append({"id": f"text-{i}", "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]})
    (folder / "captions.json").write_text(json.dumps(captions, indent=1))
    (folder / "conversations.json").write_text(json.dumps(conversations, indent=1))
    return folder
