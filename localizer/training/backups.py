"""Checkpoints that survive a kill at any moment: models saved atomically, and
`keras.callbacks.BackupAndRestore` backups written file by file with a rename
(`AtomicBackupAndRestore`), which a resumed run (or a stage found finished) reads back
(`completed_epochs`).
"""

import json
import os

import keras
from absl import logging

from pipelines import files


def save_model_atomically(model, path):
    """Writes `model` to `path` via a temporary file and a rename.

    A kill during the write leaves the previous file intact, never a corrupt one.
    """
    files.atomic_write(path, model.save)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backups survive a kill at any moment.

    Keras writes the weights and the epoch metadata in place, one after the
    other: a SIGKILL during the write can leave a corrupt HDF5 file or weights
    and epoch that disagree. Here each
    epoch's weights go to their own file (temporary name, then rename), and
    only then does the metadata, itself replaced atomically, point at them.
    """

    def __init__(self, backup_dir, **kwargs):
        # Kept after fit: a kill between a stage's last epoch and its completion
        # marker must find the stage done, not start it again. The trainer removes
        # the backups once the run is complete.
        super().__init__(backup_dir, delete_checkpoint=False, **kwargs)
        self.resumed_epoch = 0  # epochs the restored backup had completed (read by training.loop)

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{self._current_epoch:05d}.weights.h5"
        files.atomic_write(os.path.join(self.backup_dir, name), self.model.save_weights)
        previous = self._read_metadata()
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name}
        files.write_json_atomically(self._training_metadata_path, metadata)
        if previous and previous.get("weights") not in (None, name):
            _remove_quietly(os.path.join(self.backup_dir, previous["weights"]))

    def _load_model(self):
        metadata = self._read_metadata()
        if not metadata or "weights" not in metadata:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        self.model._initial_epoch = self.resumed_epoch = metadata[
            "epoch"
        ]  # Model.fit reads the former
        logging.info("Resumed from %s after epoch %d.", self.backup_dir, metadata["epoch"])

    def _read_metadata(self):
        if not os.path.exists(self._training_metadata_path):
            return None
        with open(self._training_metadata_path, encoding="utf-8") as f:
            return json.load(f)


def completed_epochs(backup_dir):
    """`(epochs completed, weights file)` of an `AtomicBackupAndRestore` backup; `(0, None)` if
    none."""
    path = os.path.join(backup_dir, "training_metadata.json")
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except FileNotFoundError:
        return 0, None
    weights = metadata.get("weights")
    return int(metadata.get("epoch", 0)), os.path.join(backup_dir, weights) if weights else None


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
