"""`voc`: Pascal VOC 2007 / 2012 through TensorFlow Datasets (`voc/2007`, `voc/2012`).

TFDS prepares the dataset once (download, extract, write TFRecords under the
TFDS data dir, `--data_dir`); afterwards it is read offline. Without internet,
put the official tar files, unchanged, in a *manual dir* and TFDS takes them
from there instead of downloading (`--manual_dir`; by default TFDS looks in
`<data_dir>/downloads/manual`). TFDS's download manager looks for every URL of
the builder under `manual_dir / <file name registered with the URL's
checksum>`, for any dataset, not only those with manual download instructions,
and checks the file's size and sha256. TFDS's VOC builder always fetches both
archives of a year, whatever split is asked for:

  - 2007: `VOCtrainval_06-Nov-2007.tar` and `VOCtest_06-Nov-2007.tar`,
  - 2012: `VOCtrainval_11-May-2012.tar` and `VOC2012test.tar`.

Images are kept encoded (`tfds.decode.SkipDecoding`); `pipelines.decode.decode`
decodes them later. Each image is reduced to one target at index time by the
`--policy` (see `pipelines.sources.source.choose_target`); objects marked
`is_difficult` are never targets.
"""

import os
import socket
import threading
import urllib.parse

import tensorflow_datasets as tfds
from absl import logging

from pipelines.sources.source import DatasetError
from pipelines.sources.tfds_source import TfdsSource

YEARS = ("2007", "2012")

SPLITS = ("train", "validation", "test")
"""TFDS split names; a split string may join them with `+` (and slice them)."""

SPLIT_ALIASES = {"val": "validation", "trainval": "train+validation"}

ARCHIVES = {
    "2007": ("VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar"),
    "2012": ("VOCtrainval_11-May-2012.tar", "VOC2012test.tar"),
}
"""The official archives TFDS's VOC builder needs to prepare each year (both)."""

REACHABILITY_TIMEOUT_S = 5.0
"""How long to wait for the download host before declaring the machine offline."""


def _format_size(num_bytes):
    return f"{int(num_bytes) / 1e6:.0f} MB"


def _host_reachable(url, timeout=REACHABILITY_TIMEOUT_S):
    """Whether a TCP connection to `url`'s host opens within `timeout` seconds.

    TFDS retries a failed download 10 times with back-off (minutes offline),
    so the source checks once, quickly, before letting TFDS download. Name
    resolution has no timeout of its own, hence the thread.
    """
    parsed = urllib.parse.urlparse(url)
    if not parsed.hostname:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result = []

    def connect():
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout):
                result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result)


def canonical_split(split):
    """TFDS split string for `split`: `val` -> `validation`, parts joined by `+`."""
    parts = []
    for part in str(split).split("+"):
        part = part.strip()
        name, bracket, rest = part.partition("[")
        name = SPLIT_ALIASES.get(name.strip(), name.strip())
        if "+" in name:  # `trainval` expands to two splits; no slicing on it.
            if bracket:
                raise DatasetError(f"Cannot slice {part!r}; slice train and validation separately.")
            parts.append(name)
            continue
        if name not in SPLITS:
            raise DatasetError(
                f"voc has splits {list(SPLITS)} (and 'val' for 'validation'); got {split!r}."
            )
        parts.append(name + bracket + rest)
    return "+".join(parts)


class VocTfdsSource(TfdsSource):
    """Pascal VOC through TFDS, one target per image chosen by `policy` (a `TfdsSource`
    that may prepare the dataset from the official archives).

    Args:
      data_dir: TFDS data dir (None: TFDS's default, `~/tensorflow_datasets`).
      year: "2007" or "2012" (2012's test split has no annotations).
      policy: target policy, one of `pipelines.sources.source.POLICIES`.
      manual_dir: folder holding the official VOC tar files (no internet
        needed). None: TFDS's default, `<data_dir>/downloads/manual`.
      download: whether TFDS may download the archives that are not in the
        manual dir. With False, a missing dataset raises `DatasetError` at once.

    The dataset is prepared (when needed) on the first `load` or
    `num_examples`, not in the constructor.
    """

    name = "voc"

    def __init__(
        self, data_dir=None, year="2007", policy="largest", manual_dir=None, download=True
    ):
        year = str(year)
        if year not in YEARS:
            raise DatasetError(f"voc year must be one of {YEARS}; got {year!r}.")
        super().__init__(f"voc/{year}", data_dir=data_dir, policy=policy)
        self.name = "voc"
        self.year = year
        self.manual_dir = os.fspath(manual_dir) if manual_dir else None
        self.download = bool(download)

    # ------------------------------------------------------------------
    # Preparation
    # ------------------------------------------------------------------

    @property
    def effective_manual_dir(self):
        """Where TFDS looks for the tar files: `manual_dir` or `<data_dir>/downloads/manual`."""
        if self.manual_dir:
            return self.manual_dir
        return os.fspath(self.builder.data_dir_root / "downloads" / "manual")

    def _archive_urls(self):
        """{file name: (url, UrlInfo or None)} of the archives the builder downloads."""
        url_infos = {}
        try:
            url_infos = type(self.builder).url_infos or {}
        except Exception:  # noqa: BLE001 - only used to enrich messages
            url_infos = {}
        by_name = {
            info.filename or url.rsplit("/", 1)[-1]: (url, info) for url, info in url_infos.items()
        }
        return {name: by_name.get(name, (None, None)) for name in ARCHIVES[self.year]}

    def _missing_archives(self):
        folder = self.effective_manual_dir
        return [
            name for name in ARCHIVES[self.year] if not os.path.isfile(os.path.join(folder, name))
        ]

    def _instructions(self, reason):
        archives = self._archive_urls()
        folder = self.effective_manual_dir
        lines = [
            f"Pascal VOC {self.year} (TFDS voc/{self.year}) is not prepared in the TFDS data dir "
            f"{self.builder.data_dir_root} and cannot be prepared: {reason}",
            f"To prepare it without internet, put these official archives, unchanged and with "
            f"these exact names, in {folder}:",
        ]
        for name in ARCHIVES[self.year]:
            url, info = archives[name]
            detail = []
            if info is not None:
                detail.append(_format_size(info.size))
                detail.append(f"sha256 {info.checksum}")
            if url:
                detail.append(f"from {url}")
            present = os.path.isfile(os.path.join(folder, name))
            state = "present" if present else "MISSING"
            lines.append(f"  - {name} [{state}]" + (f" ({', '.join(detail)})" if detail else ""))
        data_dir_flag = f"--data_dir={self.data_dir}" if self.data_dir else "--data_dir=DIR"
        lines.append(
            f"then run again with {data_dir_flag} --manual_dir={folder} --voc_year={self.year} "
            f"(--manual_dir may be left out when the files are in <data_dir>/downloads/manual). "
            "TFDS needs both archives even for one split; preparing takes a few minutes once, "
            "later runs read the prepared dataset offline."
        )
        return "\n".join(lines)

    def prepare(self):
        """Makes sure the TFDS dataset is prepared; raises `DatasetError` if it cannot be."""
        if self._prepared or self.builder.is_prepared():
            self._prepared = True
            return
        missing = self._missing_archives()
        if missing:
            folder = self.effective_manual_dir
            if not self.download:
                raise DatasetError(
                    self._instructions(
                        f"downloading is off (download=False) and {', '.join(missing)} "
                        f"{'is' if len(missing) == 1 else 'are'} not in {folder}."
                    )
                )
            if self.manual_dir:
                raise DatasetError(
                    self._instructions(f"the manual dir {folder} lacks {', '.join(missing)}.")
                )
            urls = [url for url, _ in self._archive_urls().values() if url]
            if urls and not _host_reachable(urls[0]):
                raise DatasetError(
                    self._instructions(
                        f"the download host of {urls[0]} cannot be reached (no internet?)."
                    )
                )
        config = tfds.download.DownloadConfig(
            manual_dir=self.manual_dir,  # None: TFDS's <data_dir>/downloads/manual.
            try_download_gcs=False,
        )
        logging.info(
            "Preparing TFDS voc/%s in %s (once; takes minutes).",
            self.year,
            self.builder.data_dir_root,
        )
        try:
            self.builder.download_and_prepare(download_config=config)
        except Exception as error:  # noqa: BLE001 - every failure gets the instructions
            if "checksum" in type(error).__name__.lower() or "checksum" in str(error).lower():
                reason = (
                    "an archive does not match the official file (wrong size or sha256; "
                    f"truncated or repacked?): {error}"
                )
            else:
                reason = f"{type(error).__name__}: {error}"
            raise DatasetError(self._instructions(reason)) from error
        self._prepared = True

    def _check_split(self, split):
        split = canonical_split(split)
        if self.year == "2012" and "test" in split:
            raise DatasetError(
                "VOC2012's test split has no annotations (TFDS voc/2012); "
                "use train or validation, or VOC2007's test split."
            )
        return split

    def _fallback_id(self, split, position):
        return f"voc{self.year}/{split}/{position}"
