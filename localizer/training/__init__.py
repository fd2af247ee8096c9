"""Training: from a config to a trained model in a work dir.

config.py        TrainConfig (and DataConfig): validated, overridable, saved as JSON
trainer.py       train_and_evaluate(config, workdir): what `python -m localizer.train` calls
stages.py        the two stages (frozen heads, then fine-tuning) as Model.fit runs
loop.py          the same epochs across workers (MultiWorkerMirroredStrategy), without Model.fit
cluster.py       who is the chief, chief-only writes, what the workers agree on
objective.py     targets per output, the multi-task loss, metrics, optimizer, schedule
feature_cache.py frozen-backbone features computed once per pass
iou_callback.py  the IoU callback: the full validation picture each epoch, best.keras
history.py       the validation history: metrics.jsonl and metrics.csv
backups.py       atomic model saves and backups a kill cannot corrupt (resume)
weight_average.py validation on the weights' moving average (ema_momentum)
strategy.py      tf.distribute strategy and dtype policy
data.py          the dataset source, its checks, the constant-guess floor
workdir.py       the work dir: writable, stage markers
"""
