"""TEST ORACLE -- not part of the library. The MME calculation tool fed by LLaVA's MME converter.

Sources:
* eval_tool/calculation.py inside tools/eval_tool.zip of repository
  BradyFU/Awesome-Multimodal-Large-Language-Models, branch Evaluation, commit
  1c1d69e138b57cf8b0400427927bfb8ed4285458: `eval_type_dict` and the class `calculate_metrics`.
  `divide_chunks` and `parse_pred_ans` are as published. `compute_metric` keeps only the accuracy
  (sklearn is not installed here: `accuracy_score(gts, preds)` is computed as sklearn does, the mean of
  `gts == preds`; the confusion matrix, precision and recall feed nothing in the score and are left
  out). `process_result` is as published except that each task's text comes from the `files` argument
  instead of `open(results_dir/task.txt)` (read back the way text-mode `open` does, universal newlines)
  and the scores are returned instead of printed.
* the result-writing loop of LLaVA's playground/data/eval/MME/convert_answer_to_mme.py (shipped in
  LLaVA's eval.zip): one `'\\t'.join((file, prompt, gt_ans, answer)) + '\\n'` line per answer, per task
  (`write_task_file` below).
Used only by tests/eval/test_scorers_differential.py.
"""

# ruff: noqa
import io

import numpy as np

eval_type_dict = {
    "Perception": ["existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR"],
    "Cognition": ["commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning"]
}


def accuracy_score(gts, preds):
    return np.average(np.asarray(gts) == np.asarray(preds))


def write_task_file(cate_tups):
    fp = io.StringIO()
    for file, prompt, gt_ans, answer in cate_tups:
        tup = file, prompt, gt_ans, answer
        fp.write('\t'.join(tup) + '\n')
    return fp.getvalue()


class calculate_metrics:
    def divide_chunks(self, l, n=2):
        # looping till length l
        for i in range(0, len(l), n):
            yield l[i:i + n]

        return

    def parse_pred_ans(self, pred_ans):
        pred_label = None
        if pred_ans in ["yes", "no"]:
            pred_label = pred_ans
        else:
            prefix_pred_ans = pred_ans[:4]

            if "yes" in prefix_pred_ans:
                pred_label = "yes"
            elif "no" in prefix_pred_ans:
                pred_label = "no"
            else:
                pred_label = "other"

        return pred_label


    def compute_metric(self, gts, preds):
        assert len(gts) == len(preds)

        label_map = {
            "yes": 1,
            "no": 0,
            "other": -1,
        }

        gts = [label_map[x] for x in gts]
        preds = [label_map[x] for x in preds]

        acc = accuracy_score(gts, preds)

        metric_dict = dict()
        metric_dict = {
            "acc": acc,
        }

        return metric_dict


    def process_result(self, files):

        model_score_dict = dict()
        for eval_type, task_name_list in eval_type_dict.items():

            scores = 0
            task_score_dict = dict()

            for task_name in task_name_list:

                lines = io.StringIO(files[task_name], newline=None).readlines()
                chunk_lines = list(self.divide_chunks(lines)) # one image corresponds to two questions

                img_num = len(chunk_lines)
                task_other_ans_num = 0
                task_score = 0
                acc_plus_correct_num = 0
                gts = []
                preds = []

                for img_items in chunk_lines:
                    assert len(img_items) == 2
                    img_correct_num = 0

                    for img_item in img_items:
                        img_name, question, gt_ans, pred_ans = img_item.split("\t")

                        gt_ans = gt_ans.lower()
                        pred_ans = pred_ans.lower()

                        assert gt_ans in ["yes", "no"] # gt can only be yes or no.

                        pred_ans = self.parse_pred_ans(pred_ans)
                        assert pred_ans in ["yes", "no", "other"]

                        gts.append(gt_ans)
                        preds.append(pred_ans)

                        if gt_ans == pred_ans:
                            img_correct_num += 1

                        if pred_ans not in ["yes", "no"]:
                            task_other_ans_num += 1

                    if img_correct_num == 2:
                        acc_plus_correct_num += 1

                # cal TP precision acc, etc.
                metric_dict = self.compute_metric(gts, preds)
                acc_plus = acc_plus_correct_num / img_num
                metric_dict["acc_plus"] = acc_plus


                for k, v in metric_dict.items():
                    if k in ["acc", "acc_plus"]:
                        task_score += v*100

                task_score_dict[task_name] = task_score

                scores += task_score

            model_score_dict[eval_type] = (scores, task_score_dict)

        return model_score_dict
