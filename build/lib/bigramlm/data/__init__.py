"""Data: where corpora come from, how they are read, split and formatted, and batching.

- ``sources``: local copies, the user cache and checked downloads; ``hub``: the
  Hugging Face hub; ``registry``: the named corpora.
- ``text``: plain text, split 90/10 by characters as in the lecture.
- ``table``, ``splits``, ``formats``, ``instructions``: instruction tables read into
  rows, split by rows, formatted as the notebook's blocks.
- ``loading``: ``load_data`` for any source, ``load_run_data`` for a run's own data.
- ``batching``: random block batches for training.
"""

from bigramlm.data.loading import DataInfo, data_info, load_data, load_run_data
from bigramlm.data.text import TextData

__all__ = ["DataInfo", "TextData", "data_info", "load_data", "load_run_data"]
