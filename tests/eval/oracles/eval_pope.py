"""TEST ORACLE -- not part of the library. LLaVA's POPE evaluation, verbatim.

Source: repository haotian-liu/LLaVA, file llava/eval/eval_pope.py at commit
ce1aa08d129bd7df931a7067bcb79cf3cb3a1af5, function `eval_pope`. Changes: the labels come in as a list
(the original reads `json.loads(q)['label']` from each line of the label file), the prints are
dropped and the computed numbers are returned. The parsing and counting are as published, including
the in-place rewrite of `answer['text']`. Used only by tests/eval/test_scorers_differential.py.
"""

# ruff: noqa


def eval_pope(answers, label_list):
    for answer in answers:
        text = answer['text']

        # Only keep the first sentence
        if text.find('.') != -1:
            text = text.split('.')[0]

        text = text.replace(',', '')
        words = text.split(' ')
        if 'No' in words or 'not' in words or 'no' in words:
            answer['text'] = 'no'
        else:
            answer['text'] = 'yes'

    for i in range(len(label_list)):
        if label_list[i] == 'no':
            label_list[i] = 0
        else:
            label_list[i] = 1

    pred_list = []
    for answer in answers:
        if answer['text'] == 'no':
            pred_list.append(0)
        else:
            pred_list.append(1)

    pos = 1
    neg = 0
    yes_ratio = pred_list.count(1) / len(pred_list)

    TP, TN, FP, FN = 0, 0, 0, 0
    for pred, label in zip(pred_list, label_list):
        if pred == pos and label == pos:
            TP += 1
        elif pred == pos and label == neg:
            FP += 1
        elif pred == neg and label == neg:
            TN += 1
        elif pred == neg and label == pos:
            FN += 1

    precision = float(TP) / float(TP + FP)
    recall = float(TP) / float(TP + FN)
    f1 = 2*precision*recall / (precision + recall)
    acc = (TP + TN) / (TP + TN + FP + FN)
    return {"tp": TP, "fp": FP, "tn": TN, "fn": FN, "accuracy": acc, "precision": precision,
            "recall": recall, "f1": f1, "yes_ratio": yes_ratio}
