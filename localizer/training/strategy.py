"""Where training runs: the `tf.distribute` strategy and the Keras dtype policy."""

import keras
import tensorflow as tf
from absl import logging

from localizer.training import cluster
from localizer.training import config as config_lib


def make_strategy(name):
    """A `tf.distribute` strategy: auto picks several workers (TF_CONFIG names a cluster),
    then TPU, then several GPUs, then one device.

    Call it before any other TF op: collective ops are configured at program start.
    """
    if name == "auto" and cluster.training_tasks() > 1:
        name = "multi_worker"
    if name == "auto":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError, tf.errors.NotFoundError):
            pass
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if cluster.training_tasks() == 1:
            logging.warning(
                "--strategy=multi_worker without a %s naming several workers trains on this "
                "machine alone (see the README's multi-worker section).",
                cluster.TF_CONFIG,
            )
        tf.get_logger().setLevel("WARNING")  # else one INFO line per traced all-reduce
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r}; expected one of {config_lib.STRATEGIES}.")


def set_precision(precision, strategy):
    """Sets Keras' global dtype policy; "auto" is float16 on GPU, bfloat16 on TPU, float32 on
    CPU."""
    if precision == "auto":
        if isinstance(strategy, tf.distribute.TPUStrategy):
            precision = "mixed_bfloat16"
        elif tf.config.list_logical_devices("GPU"):
            precision = "mixed_float16"
        else:
            precision = "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision
