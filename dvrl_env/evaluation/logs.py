"""The file names of an agent's training log, in the library so that the agents (which
write it), the metrics (which read it) and the run directory (which holds it) share
them without the library importing the application."""

#: the CSV log an agent writes into its ``log_dir``, one row per logged update
PROGRESS_LOG = "progress.csv"
#: the folder under an agent's ``log_dir`` that holds TensorBoard's event files
TENSORBOARD_DIR = "tensorboard"
