"""TEST ORACLE -- not part of the library. The 2023 MMBench rule-based answer matching, verbatim.

Source: repository open-compass/opencompass, file tools/eval_mmbench.py at commit
6ca2be6626297b06088f0c4aabcfc30426341d78 (2023-08-07, "[Script] Add scripts to evaluate MMBench").
`can_infer_option`, `can_infer_text`, `can_infer`, `build_choices` and `prefetch_answer` are as
published, except: `double_log` (a print) is a no-op, and `pd.isna` is replaced by `_isna` (None or a
float NaN) because the rows here are dicts, not pandas rows.

`eval_sub_data_without_gpt` is the published `eval_sub_data` with the ChatGPT step removed: a copy the
rules cannot read would go to gpt-3.5-turbo (and, after three failures, to a random letter); here it
counts as a miss. `circular_hits` is `eval_result`'s loop over the original questions with the file
handling removed; like `eval_result` it applies `str()` to every prediction. Used only by
tests/eval/test_scorers_differential.py.
"""

# ruff: noqa
import math
import string

fout = None


def double_log(msg, fout=None):
    pass


def _isna(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


# Prefetch Answers
def can_infer_option(answer, num_choice=5):
    choices = string.ascii_uppercase[:num_choice]
    if 'Failed to obtain answer via API' in answer:
        return False

    def count(splits, choices='ABCD', prefix='', suffix=''):
        cnt = 0
        for c in choices:
            if prefix + c + suffix in splits:
                cnt += 1
        return cnt

    splits = [x.strip() for x in answer.split()]
    if count(splits, choices) == 1:
        for ch in choices:
            if 'A' in splits and len(splits) > 3:
                double_log(
                    f'A might be a quantifier in the string: {answer}. ', fout)
                break
            if ch in splits:
                return ch
    tups = [('', '.'), ('', ','), ('', ':'), ('', ')'), ('', ').'), ('(', ')'),
            ('(', ').'), (':', ''), (':', ','), (':', '.'), (':', ')'),
            (':', ').')]
    for tup in tups:
        if count(splits, choices, prefix=tup[0], suffix=tup[1]) == 1:
            for ch in choices:
                if tup[0] + ch + tup[1] in splits:
                    return ch
    return False


def can_infer_text(answer, choices):
    answer = answer.lower()
    assert isinstance(choices, dict)
    for k in choices:
        assert k in 'ABCD'
        choices[k] = str(choices[k]).lower()
    cands = []
    for k in choices:
        if choices[k] in answer:
            cands.append(k)
    if len(cands) == 1:
        return cands[0]
    return False


def can_infer(answer, choices):
    copt = can_infer_option(answer)
    return copt if copt else can_infer_text(answer, choices)


def build_choices(item):
    ret = {}
    for ch in 'ABCD':
        if not _isna(item[ch]):
            ret[ch] = item[ch]
    return ret


def prefetch_answer(item):
    choices = build_choices(item)
    return can_infer(item['prediction'], choices)


def eval_sub_data_without_gpt(sub_data, answer_map):
    lt = len(sub_data)
    GT, PRED = [], []
    for i in range(lt):
        item = sub_data[i]
        idx = item['index']
        GT.append(answer_map[idx])
        PRED.append(prefetch_answer(item))
        if PRED[-1] and (GT[-1] != PRED[-1]):
            return 0

    for i in range(lt):
        if PRED[i]:
            continue
        else:
            return 0  # the original asks ChatGPT here (extract_answer_from_item)
    return 1


def circular_hits(data, answer_map):
    """data: rows with index, prediction, A-D; answer_map: {index: letter}. Returns {main index: 0/1}."""
    data = sorted(data, key=lambda row: row['index'])
    for row in data:
        row['prediction'] = str(row['prediction'])
    data_main = [row for row in data if row['index'] < int(1e6)]
    result = {}
    for item_main in data_main:
        idx = item_main['index']
        sub_data = [row for row in data if row['index'] % int(1e6) == idx]
        result[idx] = eval_sub_data_without_gpt(sub_data, answer_map)
    return result
