"""transformers side of benches/finetune.rs: all-MiniLM-L6-v2 as BertForSequenceClassification
(4 labels), fine-tuned with transformers' Trainer from the very weights the Rust side started
from (its classifier included: `cfg["model"]` is the folder it saved before training) on the
token ids it wrote, in the order its Trainer drew them (read sequentially), with the same batch
size, learning rate (linear decay, no warmup), weight decay, steps, seed and thread count; then
accuracy on the held-out ids. Prints one JSON line: accuracy, train_s, eval_s."""
import json
import sys
import tempfile
import time

import numpy as np
import torch
from transformers import (
    AutoTokenizer,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)
from transformers.utils import logging

logging.set_verbosity_error()
cfg = json.load(open(sys.argv[1]))
if cfg["threads"] > 0:  # 0: torch's own default, as a user runs it
    torch.set_num_threads(cfg["threads"])
labels = cfg["labels"]
model = BertForSequenceClassification.from_pretrained(cfg["model"])
assert model.config.num_labels == len(labels), model.config
tok = AutoTokenizer.from_pretrained(cfg["tokenizer"])


def rows(xs):
    return [{"input_ids": x["input_ids"], "labels": x["label"]} for x in xs]


train, held_out = rows(cfg["train"]), rows(cfg["eval"])
with tempfile.TemporaryDirectory() as out:
    args = TrainingArguments(
        output_dir=out, per_device_train_batch_size=cfg["batch"], per_device_eval_batch_size=64,
        learning_rate=cfg["lr"], weight_decay=cfg["weight_decay"], warmup_steps=0,
        lr_scheduler_type="linear", max_steps=cfg["steps"], seed=cfg["seed"],
        save_strategy="no", eval_strategy="no", logging_steps=50, report_to=[],
        disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
        # the batches in the order the Rust side drew them
        train_sampling_strategy="sequential",
    )
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      data_collator=DataCollatorWithPadding(tok))
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = trainer.predict(held_out)
    eval_s = time.perf_counter() - t0
acc = float((np.argmax(pred.predictions, axis=-1) == pred.label_ids).mean())
print(json.dumps({"accuracy": acc, "train_s": train_s, "eval_s": eval_s}))
