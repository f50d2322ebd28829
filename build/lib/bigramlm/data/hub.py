"""Downloads from the Hugging Face hub (the Bitext corpus), pinned and checked.

``huggingface_hub`` reads ``HF_ENDPOINT`` once at import; we read it at call time and
pass it on, so a test (or a mirror) can point the download anywhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from bigramlm._fs import atomic_write, sha256_of
from bigramlm.data.sources import Corpus
from bigramlm.errors import BigramLMError


def fetch_from_hf_hub(corpus: Corpus, dest: Path) -> None:
    """Download ``corpus.file_name`` from the dataset repo ``corpus.repo_id`` at ``corpus.revision``.

    The file lands in a private temporary hub cache, is checked against the registry's sha256,
    and only then is copied atomically to ``dest``: a failure caches nothing.
    """
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # a declared dependency, but keep the message useful
        raise BigramLMError("huggingface_hub is not installed; cannot download the Bitext dataset") from None
    repo_id, revision = corpus.repo_id, corpus.revision
    if not repo_id or not revision:
        raise BigramLMError(f"corpus {corpus.name!r} names no hub repository and revision")
    endpoint = os.environ.get("HF_ENDPOINT") or None
    created_parent = not dest.parent.exists()
    dest.parent.mkdir(parents=True, exist_ok=True)
    hub_cache = Path(tempfile.mkdtemp(prefix=".hf-", dir=dest.parent))
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    ok = False
    try:
        # The hub client logs every retry as a warning; our one-line error says it all.
        hub_logger.setLevel(logging.ERROR)
        try:
            local = hf_hub_download(
                repo_id, corpus.file_name, repo_type="dataset", revision=revision,
                cache_dir=hub_cache, endpoint=endpoint,
            )
        except Exception as exc:  # network, HTTP and hub errors all end in one line
            first = (str(exc).strip().splitlines() or [""])[0]
            where = endpoint or "https://huggingface.co"
            raise BigramLMError(
                f"download of {repo_id}/{corpus.file_name} (revision {revision[:12]}) from {where} failed: "
                f"{type(exc).__name__}: {first}"
            ) from None
        finally:
            hub_logger.setLevel(level)
        digest = sha256_of(Path(local))
        if digest != corpus.sha256:
            raise BigramLMError(
                f"download of {repo_id}/{corpus.file_name} failed its checksum: sha256 {digest} != {corpus.sha256}"
            )
        atomic_write(dest, lambda tmp: shutil.copyfile(local, tmp))
        ok = True
    finally:
        shutil.rmtree(hub_cache, ignore_errors=True)
        if not ok and created_parent:
            try:
                dest.parent.rmdir()  # a failed download leaves nothing behind, not even a folder
            except OSError:
                pass
