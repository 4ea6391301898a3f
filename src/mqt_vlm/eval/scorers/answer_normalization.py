"""VQA answer normalisation shared by the VQAv2, VizWiz and TextVQA scorers.

Three official normalisers exist, and their small differences move scores:

* `vqaEval.py` (GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/vqaEval.py): `processPunctuation`
  then `processDigitArticle` (`normalize_vqa_eval_answer`). The VQAv2 server applies it to the
  submitted answer and to the human answers, but only for questions whose human answers disagree.
* The VizWiz-VQA tool (Qing Li's vqaEval.py fork): the same two steps on the submitted answer only,
  with a contraction table whose apostrophes are mostly curly (`VIZWIZ_CONTRACTIONS`).
* `EvalAIAnswerProcessor` (LLaVA llava/eval/m4c_evaluator.py, copied from mmf's
  pythia/tasks/processors.py; `normalize_vqa_answer`): lower-cases, deletes every "," and "?", splits
  "'s" into " 's", then runs the same two steps. LLaVA runs it on predictions before a VQAv2/VizWiz
  submission, and the m4c TextVQA evaluator runs it on both predictions and ground truths.

Quirks reproduced on purpose (each one changes some answer somewhere):

1. A punctuation character is *deleted* when it touches a space anywhere in the input ("p " or " p"),
   or when the input holds a digit-comma-digit such as "1,000"; otherwise it becomes a space
   ("t-shirt" -> "t shirt"). The test runs per character over the whole original string, so
   "t-shirt - red" deletes every "-" ("tshirt  red").
2. The period regex `(?!<=\\d)(\\.)(?!\\d)` was meant as a look-behind but is a look-ahead for the
   literal text "<=" and a digit, so it simply deletes every "." not followed by a digit: "3.5" keeps
   its period, "end." and "mr. t" lose theirs, ".5" keeps it.
3. `re.UNICODE` (== 32) is passed positionally into `Pattern.sub`'s *count*, so at most 32 periods are
   deleted per answer.
4. The apostrophe and ":" are not punctuation. Contractions only map apostrophe-less forms
   ("dont" -> "don't"); keys holding capitals ("Im", "Ive", "Id've") can never match because the text
   is lower-cased first, and "somebody'd" maps to "somebodyd" (backwards, as in the original).
5. Number words map to digits only for "zero".."ten" and "none" -> "0"; "a", "an", "the" are dropped.
6. EvalAI's digit-comma-digit test never fires: its tokenizer already deleted every comma.
7. VizWiz's table writes most results with U+2019 ("dont" -> "don’t"), so a raw "dont" no longer
   matches a human "don't" there; a few entries stayed straight (see `VIZWIZ_CONTRACTIONS`).

Python 3 semantics throughout (`\\d` matches any Unicode decimal digit, `str.split()` splits on Unicode
whitespace), as in the Python 3 tools. The VQA repository's file is Python 2, where `\\d` without
re.UNICODE matches only 0-9: the two differ only for non-ASCII digits next to "," or ".".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@",
               "`", ",", "?", "!")
ARTICLES = frozenset({"a", "an", "the"})
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd",
    "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am",
    "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't",
    "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've",
    "she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's",
    "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've",
    "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}

_CURLY_APOSTROPHE = "\u2019"
# The VizWiz tool's table is vqaEval's with every apostrophe made curly, except for two keys and eight
# values that kept the straight one (checked entry by entry against the tool by the differential tests).
_VIZWIZ_STRAIGHT_KEYS = frozenset({"couldn'tve", "hadn'tve"})
_VIZWIZ_STRAIGHT_VALUES = frozenset({"aint", "arent", "cant", "couldve", "couldnt", "weve", "wheres", "whove"})
VIZWIZ_CONTRACTIONS = {
    (key if key in _VIZWIZ_STRAIGHT_KEYS else key.replace("'", _CURLY_APOSTROPHE)):
        (value if key in _VIZWIZ_STRAIGHT_VALUES else value.replace("'", _CURLY_APOSTROPHE))
    for key, value in CONTRACTIONS.items()
}

# vqaEval's test `(\d)(\,)(\d)` and EvalAI's `(?<=\d)(\,)+(?=\d)` differ only on "1,,2"; both are kept.
VQA_EVAL_COMMA_DIGITS = re.compile(r"(\d)(,)(\d)")
EVALAI_COMMA_DIGITS = re.compile(r"(?<=\d)(,)+(?=\d)")
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # the broken look-behind, kept (quirk 2)
_MAX_PERIODS_REMOVED = int(re.UNICODE)  # 32: the flag the original passed as `count` (quirk 3)


def process_punctuation(text: str, comma_digits: re.Pattern[str] = VQA_EVAL_COMMA_DIGITS) -> str:
    """`processPunctuation`: delete or space out punctuation, then delete periods (quirks 1-3)."""
    delete_everywhere = comma_digits.search(text) is not None
    out = text
    for p in PUNCTUATION:
        # The condition looks at the original `text`, the replacement edits the running `out`.
        if delete_everywhere or (p + " ") in text or (" " + p) in text:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out, count=_MAX_PERIODS_REMOVED)


def process_digit_article(text: str, contractions: Mapping[str, str] = CONTRACTIONS) -> str:
    """`processDigitArticle`: lower-case, number words to digits, drop articles, map contractions."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    kept = [word for word in words if word not in ARTICLES]
    return " ".join(contractions.get(word, word) for word in kept)


def clean_whitespace(text: str) -> str:
    """Newlines and tabs to spaces, then strip: every VQA tool's first step on an answer."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_vqa_eval_answer(answer: str, contractions: Mapping[str, str] = CONTRACTIONS) -> str:
    """vqaEval's full normalisation of one (already whitespace-cleaned) answer: punctuation, then
    digits / articles / contractions."""
    return process_digit_article(process_punctuation(answer), contractions)


def normalize_vqa_answer(answer: str) -> str:
    """LLaVA's `EvalAIAnswerProcessor`: the post-processing applied before a VQAv2/VizWiz submission.

    Also the normaliser of the m4c TextVQA evaluator (both sides). Differs from vqaEval's by deleting
    "," and "?" up front and splitting "'s" off ("dog's" -> "dog 's").
    """
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return process_digit_article(process_punctuation(clean_whitespace(text), EVALAI_COMMA_DIGITS))
