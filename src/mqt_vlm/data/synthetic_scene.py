"""Scene graphs and rendering for the synthetic grid-VQA dataset.

A scene is a G x G grid of cells, some holding one coloured shape. The scene graph (not the
picture) is the source of truth: questions and answers are derived from it, and the picture is
drawn from it, so an answer can never disagree with what was meant to be drawn.

Everything is deterministic: randomness comes only from a `random.Random` passed in or built from
(seed, index, stream) by `scene_rng`, never from global RNG state, so any one image can be rebuilt
on its own and two runs with the same seed give byte-identical output.

Rendering uses PIL's ImageDraw without anti-aliasing, so pixels are exact and colours in the image
are exactly the palette colours (handy for tests and for a tiny model that has to tell them apart).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from PIL import Image, ImageDraw

from mqt_vlm.errors import MQTError

# Every shape and colour the renderer knows. Configs pick a subset; the defaults are the four
# colours and three shapes that stay easy to tell apart at 16 px per cell.
ALL_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 50, 180),
    "orange": (245, 130, 10),
}
QUESTION_TYPES: tuple[str, ...] = ("global", "count", "cell", "relation")


@dataclass
class SynthConfig:
    """Everything that decides the dataset; the same config and seed give the same bytes.

    `max_objects=None` means half the cells (at least `min_objects`): dense enough that relation
    questions usually have a same-row/column neighbour, sparse enough that "none" answers occur.
    Split fractions are of images, not questions, so no test image is ever seen in training.
    """

    seed: int = 0
    n_images: int = 1000
    grid: int = 4
    image_size: int = 64
    shapes: tuple[str, ...] = ("circle", "square", "triangle")
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    min_objects: int = 3
    max_objects: int | None = None
    questions_per_image: int = 4
    question_types: tuple[str, ...] = QUESTION_TYPES
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    background: tuple[int, int, int] = (255, 255, 255)
    margin: float = 0.15  # fraction of a cell left empty on each side of a shape
    empty_cell_prob: float = 0.25  # chance a cell question asks about an empty cell (if any)

    def __post_init__(self) -> None:
        self.shapes = tuple(self.shapes)
        self.colours = tuple(self.colours)
        self.question_types = tuple(self.question_types)
        self.background = tuple(int(v) for v in self.background)  # type: ignore[assignment]
        self._validate()

    def _validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise MQTError(f"SynthConfig: {msg}")

        for name in ("seed", "n_images", "grid", "image_size", "min_objects", "questions_per_image"):
            value = getattr(self, name)
            is_int = isinstance(value, int) and not isinstance(value, bool)
            need(is_int, f"{name} must be an int, got {value!r}")
        need(self.n_images >= 1, f"n_images must be >= 1, got {self.n_images}")
        need(self.grid >= 1, f"grid must be >= 1, got {self.grid}")
        need(
            self.image_size >= 4 * self.grid,
            f"image_size {self.image_size} gives under 4 px per cell for grid {self.grid}; "
            f"use >= {4 * self.grid}",
        )
        need(0 < len(self.shapes) == len(set(self.shapes)), "shapes must be non-empty and unique")
        unknown = [s for s in self.shapes if s not in ALL_SHAPES]
        need(not unknown, f"unknown shapes {unknown}; choose from {list(ALL_SHAPES)}")
        need(0 < len(self.colours) == len(set(self.colours)), "colours must be non-empty and unique")
        unknown = [c for c in self.colours if c not in COLOUR_RGB]
        need(not unknown, f"unknown colours {unknown}; choose from {list(COLOUR_RGB)}")
        need(len(self.background) == 3, f"background must be an RGB triple, got {self.background!r}")
        need(
            self.background not in [COLOUR_RGB[c] for c in self.colours],
            "background must differ from every shape colour",
        )
        cells = self.grid * self.grid
        need(1 <= self.min_objects <= cells, f"min_objects must be in 1..{cells}, got {self.min_objects}")
        if self.max_objects is not None:
            need(
                self.min_objects <= self.max_objects <= cells,
                f"max_objects must be in {self.min_objects}..{cells}, got {self.max_objects}",
            )
        need(self.questions_per_image >= 1, "questions_per_image must be >= 1")
        unknown = [t for t in self.question_types if t not in QUESTION_TYPES]
        need(
            not unknown and len(self.question_types) > 0,
            f"question_types must be a non-empty subset of {list(QUESTION_TYPES)}",
        )
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            need(0.0 <= value < 1.0, f"{name} must be in [0, 1), got {value}")
        need(
            self.val_fraction + self.test_fraction < 1.0,
            "val_fraction + test_fraction must be < 1 to leave some training images",
        )
        need(0.0 <= self.margin < 0.5, f"margin must be in [0, 0.5), got {self.margin}")
        prob = self.empty_cell_prob
        need(0.0 <= prob <= 1.0, f"empty_cell_prob must be in [0, 1], got {prob}")

    @property
    def object_range(self) -> tuple[int, int]:
        """Inclusive (min, max) number of objects per scene, with the `None` default resolved."""
        if self.max_objects is not None:
            return self.min_objects, self.max_objects
        return self.min_objects, max(self.min_objects, self.grid * self.grid // 2)
        return self.min_objects, hi


@dataclass(frozen=True)
class SceneObject:
    """One shape in one cell. Rows and columns are 1-based, exactly as the questions say them."""

    row: int
    col: int
    shape: str
    colour: str


@dataclass(frozen=True)
class Scene:
    """A scene graph: at most one object per cell, objects kept sorted by (row, col)."""

    grid: int
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    def at(self, row: int, col: int) -> SceneObject | None:
        """The object in cell (row, col), 1-based, or None for an empty cell."""
        for obj in self.objects:
            if obj.row == row and obj.col == col:
                return obj
        return None

    def to_dict(self) -> dict:
        """A JSON-ready form, written to scenes.json so answers can be re-derived offline."""
        return {
            "grid": self.grid,
            "objects": [asdict(o) for o in self.objects],
        }


def scene_rng(seed: int, index: int, stream: str = "scene") -> random.Random:
    """An independent RNG for one image and one purpose.

    Seeding from a string (hashed with SHA-512 by `random`, not by Python's salted `hash`) keeps it
    stable across processes; separate streams mean that changing the question settings does not
    change the scenes.
    """
    return random.Random(f"mqt-synth:{seed}:{index}:{stream}")


def generate_scene(rng_or_seed: random.Random | int, config: SynthConfig) -> Scene:
    """Draw a scene: a random number of objects in distinct random cells, shape and colour uniform.

    Repeats of the same (shape, colour) are allowed on purpose: they make counting non-trivial and
    make some relation referents ambiguous, which the question generator must then skip.
    """
    rng = rng_or_seed if isinstance(rng_or_seed, random.Random) else random.Random(rng_or_seed)
    lo, hi = config.object_range
    n = rng.randint(lo, hi)
    cells = rng.sample(range(config.grid * config.grid), n)
    objects = [
        SceneObject(
            row=cell // config.grid + 1,
            col=cell % config.grid + 1,
            shape=rng.choice(config.shapes),
            colour=rng.choice(config.colours),
        )
        for cell in cells
    ]
    objects.sort(key=lambda o: (o.row, o.col))
    return Scene(grid=config.grid, objects=tuple(objects))


def cell_box(row: int, col: int, grid: int, image_size: int, margin: float) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), inclusive, of the shape drawn in cell (row, col), 1-based.

    Cell edges are rounded from exact fractions so grids that do not divide the image still tile it.
    """
    cell = image_size / grid
    x0, x1 = (col - 1) * cell, col * cell
    y0, y1 = (row - 1) * cell, row * cell
    pad = margin * cell
    return round(x0 + pad), round(y0 + pad), round(x1 - pad) - 1, round(y1 - pad) - 1


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], rgb: tuple[int, int, int]
) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        draw.ellipse(box, fill=rgb)
    elif shape == "square":
        draw.rectangle(box, fill=rgb)
    elif shape == "triangle":  # apex up; the box centre is inside, which tests rely on
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=rgb)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=rgb)
    elif shape == "cross":  # a plus sign with arms a third of the box wide
        w, h = (x1 - x0 + 1) / 3, (y1 - y0 + 1) / 3
        draw.rectangle((round(x0 + w), y0, round(x1 - w), y1), fill=rgb)
        draw.rectangle((x0, round(y0 + h), x1, round(y1 - h)), fill=rgb)
    else:
        raise MQTError(f"cannot draw unknown shape {shape!r}; choose from {list(ALL_SHAPES)}")


def render_scene(scene: Scene, config: SynthConfig) -> Image.Image:
    """Draw the scene as an RGB image of `config.image_size` pixels square on a plain background."""
    image = Image.new("RGB", (config.image_size, config.image_size), tuple(config.background))
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        box = cell_box(obj.row, obj.col, scene.grid, config.image_size, config.margin)
        _draw_shape(draw, obj.shape, box, COLOUR_RGB[obj.colour])
    return image


def caption_for_scene(scene: Scene) -> str:
    """A stage-1 caption listing every object by cell in reading order.

    Exhaustive on purpose: stage 1 teaches the projector to carry all the detail, and a caption that
    names every cell is the densest target we can give it.
    """
    grid = f"{scene.grid}x{scene.grid} grid"
    if not scene.objects:
        return f"An empty {grid}."
    article = "An" if str(scene.grid).startswith("8") or scene.grid in (11, 18) else "A"
    parts = [f"{_article(o.colour)} {o.colour} {o.shape} in row {o.row}, column {o.col}" for o in scene.objects]
    if len(parts) == 1:
        listed = parts[0]
    elif len(parts) == 2:
        listed = f"{parts[0]} and {parts[1]}"
    else:
        listed = ", ".join(parts[:-1]) + f", and {parts[-1]}"
    return f"{article} {grid} with {listed}."


def describe_scene(scene: Scene) -> str:
    """Every cell in reading order, key first: "row 1, column 1: none. row 1, column 2: red circle. ..."

    The describe-every-cell form is both the stage-1 caption and a benchmark scored per cell. Key
    first (cell, then content) so that naming a cell is immediately followed by what is in it: the
    pattern an LM learns to retrieve by, unlike `caption_for_scene`, which names the content first.
    """
    parts = []
    for row in range(1, scene.grid + 1):
        for col in range(1, scene.grid + 1):
            obj = scene.at(row, col)
            parts.append(f"row {row}, column {col}: {'none' if obj is None else f'{obj.colour} {obj.shape}'}.")
    return " ".join(parts)


def parse_description(text: str, grid: int) -> dict[tuple[int, int], str]:
    """(row, col) -> "colour shape" / "none" for each cell a description names (first mention wins)."""
    import re

    found: dict[tuple[int, int], str] = {}
    for match in re.finditer(r"row (\d+), column (\d+):\s*([^.]*)", text):
        key = (int(match.group(1)), int(match.group(2)))
        if 1 <= key[0] <= grid and 1 <= key[1] <= grid and key not in found:
            found[key] = " ".join(match.group(3).split()).lower()
    return found


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
