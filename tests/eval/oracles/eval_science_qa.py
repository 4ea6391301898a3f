"""TEST ORACLE -- not part of the library. LLaVA's ScienceQA evaluation, verbatim.

Source: repository haotian-liu/LLaVA, file llava/eval/eval_science_qa.py at commit
ce1aa08d129bd7df931a7067bcb79cf3cb3a1af5: `get_pred_idx` as published, and the body of its
`__main__` block wrapped in `evaluate` (changes: the problems and predictions come in as arguments
instead of being read from problems.json / pid_splits.json / the result file, and the counts are
returned instead of printed and written to files). `options` is the argparse default.
Used only by tests/eval/test_scorers_differential.py.
"""

# ruff: noqa
import re
import random


def get_pred_idx(prediction, choices, options):
    """
    Get the index (e.g. 2) from the prediction (e.g. 'C')
    """
    if prediction in options[:len(choices)]:
        return options.index(prediction)
    else:
        return -1
        return random.choice(range(len(choices)))


def evaluate(split_problems, predictions, options=["A", "B", "C", "D", "E"]):
    """split_problems: {prob_id: {"choices": [...], "answer": int}}; predictions: {prob_id: {"text", "prompt"}}."""
    results = {'correct': [], 'incorrect': []}
    sqa_results = {}
    sqa_results['acc'] = None
    sqa_results['correct'] = None
    sqa_results['count'] = None
    sqa_results['results'] = {}
    sqa_results['outputs'] = {}

    for prob_id, prob in split_problems.items():
        if prob_id not in predictions:
            pred = {'text': 'FAILED', 'prompt': 'Unknown'}
            pred_text = 'FAILED'
        else:
            pred = predictions[prob_id]
            pred_text = pred['text']

        if pred_text in options:
            answer = pred_text
        elif len(pred_text) >= 3 and pred_text[0] in options and pred_text[1:3] == ". ":
            answer = pred_text[0]
        else:
            pattern = re.compile(r'The answer is ([A-Z]).')
            res = pattern.findall(pred_text)
            if len(res) == 1:
                answer = res[0]  # 'A', 'B', ...
            else:
                answer = "FAILED"

        pred_idx = get_pred_idx(answer, prob['choices'], options)

        analysis = {
            'question_id': prob_id,
            'parsed_ans': answer,
            'ground_truth': options[prob['answer']],
            'question': pred['prompt'],
            'pred': pred_text,
            'is_multimodal': '<image>' in pred['prompt'],
        }

        sqa_results['results'][prob_id] = get_pred_idx(answer, prob['choices'], options)
        sqa_results['outputs'][prob_id] = pred_text

        if pred_idx == prob['answer']:
            results['correct'].append(analysis)
        else:
            results['incorrect'].append(analysis)

    correct = len(results['correct'])
    total = len(results['correct']) + len(results['incorrect'])

    ###### IMG ######
    multimodal_correct = len([x for x in results['correct'] if x['is_multimodal']])
    multimodal_incorrect = len([x for x in results['incorrect'] if x['is_multimodal']])
    multimodal_total = multimodal_correct + multimodal_incorrect
    ###### IMG ######

    return {"correct": correct, "total": total, "img_correct": multimodal_correct,
            "img_total": multimodal_total, "results": sqa_results['results']}
