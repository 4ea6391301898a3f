"""TEST ORACLE -- not part of the library. A literal Python 3 port of the VizWiz-VQA accuracy.

Source: the VizWiz-VQA API's vqaEval.py by Qing Li (linked from https://vizwiz.org/tasks-and-datasets/vqa/;
the copy read here is repository AttentionX/InstructBLIP_PEFT, file
lavis/common/vqa_tools/vqa_eval_vizwiz.py, class `VQAEval_Vizwiz`, commit
8b0d4531de0c5d998fda1bfec5151da9b0bfb1e5). Kept verbatim: `__init__`'s tables (note the curly
apostrophes in most contraction entries), the accuracy half of `evaluate`, `processPunctuation` and
`processDigitArticle`; tabs became 4 spaces and the regexes are raw strings (same patterns). Left
out: the progress bar, the per-answer-type bookkeeping and the caption / unanswerability metrics
(they need pycocoevalcap and sklearn and do not touch the accuracy).

`vizwiz_scores` is a shim (not from the original) that feeds in-memory questions through the
accuracy loop and returns the unrounded per-question accuracies. Used only by
tests/eval/test_scorers_differential.py.
"""

# ruff: noqa
import re


class VQAEval_Vizwiz:
    def __init__(self, vqa, vqaRes, n=2):
        self.n = n
        self.accuracy     = {}
        self.evalQA       = {}
        self.vqa          = vqa
        self.vqaRes       = vqaRes
        self.params       = {'images': vqa.getImgs()}
        self.contractions = {"aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't", \
                             "couldn'tve": "couldn’t’ve", "couldnt’ve": "couldn’t’ve", "didnt": "didn’t", "doesnt": "doesn’t", "dont": "don’t", "hadnt": "hadn’t", \
                             "hadnt’ve": "hadn’t’ve", "hadn'tve": "hadn’t’ve", "hasnt": "hasn’t", "havent": "haven’t", "hed": "he’d", "hed’ve": "he’d’ve", \
                             "he’dve": "he’d’ve", "hes": "he’s", "howd": "how’d", "howll": "how’ll", "hows": "how’s", "Id’ve": "I’d’ve", "I’dve": "I’d’ve", \
                             "Im": "I’m", "Ive": "I’ve", "isnt": "isn’t", "itd": "it’d", "itd’ve": "it’d’ve", "it’dve": "it’d’ve", "itll": "it’ll", "let’s": "let’s", \
                             "maam": "ma’am", "mightnt": "mightn’t", "mightnt’ve": "mightn’t’ve", "mightn’tve": "mightn’t’ve", "mightve": "might’ve", \
                             "mustnt": "mustn’t", "mustve": "must’ve", "neednt": "needn’t", "notve": "not’ve", "oclock": "o’clock", "oughtnt": "oughtn’t", \
                             "ow’s’at": "’ow’s’at", "’ows’at": "’ow’s’at", "’ow’sat": "’ow’s’at", "shant": "shan’t", "shed’ve": "she’d’ve", "she’dve": "she’d’ve", \
                             "she’s": "she’s", "shouldve": "should’ve", "shouldnt": "shouldn’t", "shouldnt’ve": "shouldn’t’ve", "shouldn’tve": "shouldn’t’ve", \
                             "somebody’d": "somebodyd", "somebodyd’ve": "somebody’d’ve", "somebody’dve": "somebody’d’ve", "somebodyll": "somebody’ll", \
                             "somebodys": "somebody’s", "someoned": "someone’d", "someoned’ve": "someone’d’ve", "someone’dve": "someone’d’ve", \
                             "someonell": "someone’ll", "someones": "someone’s", "somethingd": "something’d", "somethingd’ve": "something’d’ve", \
                             "something’dve": "something’d’ve", "somethingll": "something’ll", "thats": "that’s", "thered": "there’d", "thered’ve": "there’d’ve", \
                             "there’dve": "there’d’ve", "therere": "there’re", "theres": "there’s", "theyd": "they’d", "theyd’ve": "they’d’ve", \
                             "they’dve": "they’d’ve", "theyll": "they’ll", "theyre": "they’re", "theyve": "they’ve", "twas": "’twas", "wasnt": "wasn’t", \
                             "wed’ve": "we’d’ve", "we’dve": "we’d’ve", "weve": "we've", "werent": "weren’t", "whatll": "what’ll", "whatre": "what’re", \
                             "whats": "what’s", "whatve": "what’ve", "whens": "when’s", "whered": "where’d", "wheres": "where's", "whereve": "where’ve", \
                             "whod": "who’d", "whod’ve": "who’d’ve", "who’dve": "who’d’ve", "wholl": "who’ll", "whos": "who’s", "whove": "who've", "whyll": "why’ll", \
                             "whyre": "why’re", "whys": "why’s", "wont": "won’t", "wouldve": "would’ve", "wouldnt": "wouldn’t", "wouldnt’ve": "wouldn’t’ve", \
                             "wouldn’tve": "wouldn’t’ve", "yall": "y’all", "yall’ll": "y’all’ll", "y’allll": "y’all’ll", "yall’d’ve": "y’all’d’ve", \
                             "y’alld’ve": "y’all’d’ve", "y’all’dve": "y’all’d’ve", "youd": "you’d", "youd’ve": "you’d’ve", "you’dve": "you’d’ve", \
                             "youll": "you’ll", "youre": "you’re", "youve": "you’ve"}
        self.manualMap    = { 'none': '0',
                              'zero': '0',
                              'one': '1',
                              'two': '2',
                              'three': '3',
                              'four': '4',
                              'five': '5',
                              'six': '6',
                              'seven': '7',
                              'eight': '8',
                              'nine': '9',
                              'ten': '10'
                            }
        self.articles     = ['a',
                             'an',
                             'the'
                            ]


        self.periodStrip  = re.compile(r"(?!<=\d)(\.)(?!\d)")
        self.commaStrip   = re.compile(r"(\d)(\,)(\d)")
        self.punct        = [';', r"/", '[', ']', '"', '{', '}',
                             '(', ')', '=', '+', '\\', '_', '-',
                             '>', '<', '@', '`', ',', '?', '!']

    def evaluate(self, imgs=None):
        if imgs == None:
            imgs = [img for img in self.params['images']]
        gts = {}
        res = {}
        for img in imgs:
            gts[img] = self.vqa.imgToQA[img]
            res[img] = self.vqaRes.imgToQA[img]

        # =================================================
        # Compute accuracy
        # =================================================
        accQA       = []
        for img in imgs:
            resAns      = res[img]['answer']
            resAns      = resAns.replace('\n', ' ')
            resAns      = resAns.replace('\t', ' ')
            resAns      = resAns.strip()
            resAns      = self.processPunctuation(resAns)
            resAns      = self.processDigitArticle(resAns)
            gtAnswers = []
            gtAcc = []
            for i, ans in enumerate(gts[img]['answers']):
                otherGTAns = [item for j, item in enumerate(gts[img]['answers']) if i != j]
                matchingAns = [item for item in otherGTAns if item['answer']==resAns]
                acc = min(1, float(len(matchingAns))/3)
                gtAcc.append(acc)
            avgGTAcc = float(sum(gtAcc))/len(gtAcc)
            accQA.append(avgGTAcc)
        self.acc_per_question = accQA  # shim: the original goes on to setAccuracy / setEvalQA

    def processPunctuation(self, inText):
        outText = inText
        for p in self.punct:
            if (p + ' ' in inText or ' ' + p in inText) or (re.search(self.commaStrip, inText) != None):
                outText = outText.replace(p, '')
            else:
                outText = outText.replace(p, ' ')
        outText = self.periodStrip.sub("",
                                      outText,
                                      re.UNICODE)
        return outText

    def processDigitArticle(self, inText):
        outText = []
        tempText = inText.lower().split()
        for word in tempText:
            word = self.manualMap.setdefault(word, word)
            if word not in self.articles:
                outText.append(word)
            else:
                pass
        for wordId, word in enumerate(outText):
            if word in self.contractions:
                outText[wordId] = self.contractions[word]
        outText = ' '.join(outText)
        return outText


# ---------------------------------------------------------------- shim (not from the original file)


class _ImageIndex:
    def __init__(self, img_to_qa):
        self.imgToQA = img_to_qa

    def getImgs(self):
        return list(self.imgToQA)


def vizwiz_scores(predictions, answer_lists):
    """Per-question accuracy in [0, 1] (unrounded) of each submitted answer, as the VizWiz tool computes it."""
    gts, res = {}, {}
    for i, (prediction, answers) in enumerate(zip(predictions, answer_lists)):
        image = f"VizWiz_test_{i:08d}.jpg"
        gts[image] = {"image": image, "answer_type": "other",
                      "answers": [{"answer": a, "answer_confidence": "yes"} for a in answers]}
        res[image] = {"image": image, "answer": prediction}
    evaluator = VQAEval_Vizwiz(_ImageIndex(gts), _ImageIndex(res))
    evaluator.evaluate()
    return evaluator.acc_per_question
