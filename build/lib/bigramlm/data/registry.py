"""The named corpora, in one explicit table, and how ``--data`` names a file.

A new corpus is one ``Corpus`` entry here: a name, a file name, its sha256, and a URL
(or a fetcher such as the hub's). Anything that is not a name is taken as a path.
"""

from __future__ import annotations

import os
from pathlib import Path

from bigramlm.data.hub import fetch_from_hf_hub
from bigramlm.data.sources import Corpus, ensure_corpus
from bigramlm.errors import BigramLMError

TINY_SHAKESPEARE = Corpus(
    name="tinyshakespeare",
    file_name="input.txt",
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
)

BITEXT_REPO = "bitext/Bitext-customer-support-llm-chatbot-training-dataset"
BITEXT_FILE = "Bitext_Sample_Customer_Support_Training_Dataset_27K_responses-v11.csv"
#: The dataset repository's commit we pin (the file's bytes are also checked by sha256).
BITEXT_REVISION = "430d1a89bd93bd1fa23c16f29dd53e73f0087443"
BITEXT = Corpus(
    name="bitext",
    file_name=BITEXT_FILE,
    sha256="6f81102b0100b97b8468eb04368033a23206bf1fde9d53500d5806ec1001a434",
    kind="instructions",
    fetch=fetch_from_hf_hub,
    repo_id=BITEXT_REPO,
    revision=BITEXT_REVISION,
)

REGISTRY: dict[str, Corpus] = {corpus.name: corpus for corpus in (TINY_SHAKESPEARE, BITEXT)}

#: File types read as instruction tables (rows), not as one text.
INSTRUCTION_SUFFIXES = {".csv", ".jsonl", ".parquet"}


def register(corpus: Corpus) -> Corpus:
    """Add a named corpus at run time (tests, notebooks); the built-in ones are above."""
    REGISTRY[corpus.name] = corpus
    return corpus


def resolve_source(source: str | os.PathLike[str]) -> tuple[Path, Corpus | None]:
    """Map a data source to a local file: a registry name or a path.

    Returns the path and the registry entry (``None`` for a plain path).
    """
    name = str(source)
    if name in REGISTRY:
        corpus = REGISTRY[name]
        return ensure_corpus(corpus), corpus
    path = Path(name).expanduser()
    if not path.exists():
        known = ", ".join(sorted(REGISTRY))
        raise BigramLMError(f"no such file or named corpus: {name} (named corpora: {known})")
    if path.is_dir():
        raise BigramLMError(f"{name} is a directory; give a file or a named corpus")
    return path, None


def is_instruction_source(source: str) -> bool:
    """Whether ``source`` is read as rows of instructions and responses."""
    if source in REGISTRY:
        return REGISTRY[source].kind == "instructions"
    return Path(source).suffix.lower() in INSTRUCTION_SUFFIXES
