"""`connectome export matrix`: a connectivity matrix to a file, with a progress bar.

The file is written as `NAME.partial` and renamed to NAME only once it is complete, so an
interrupted export never leaves a file that looks whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from connectome_query.cli.console import console, fail

export_app = typer.Typer(help="Bulk export: connectivity matrices to files.",
                         no_args_is_help=True)

SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrows": "arrow",
                  ".arrow": "arrow", ".ipc": "arrow", ".npz": "npz", ".mtx": "mtx", ".mm": "mtx"}
TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrows": "arrow",
                 ".arrow": "arrow", ".ipc": "arrow"}


@contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """Write to `path.partial`; rename onto `path` on success, delete it on any failure."""
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with partial.open("wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _body_ids(values: list[str] | None, path: Path | None) -> list[int] | None:
    from connectome_query.export.request import split_names

    items = split_names(values) or []
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}") from None
        items += [v for v in text.replace(",", " ").split() if v]
    if not items:
        return None
    try:
        return [int(v, 10) for v in items]
    except ValueError:
        bad = next(v for v in items if not v.lstrip("-").isdigit())
        raise typer.BadParameter(f"not a body id: {bad!r}") from None


def _format_for(output: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    found = SUFFIX_FORMATS.get(output.suffix.lower())
    if found is None:
        raise typer.BadParameter(
            f"cannot tell the format from {output.name!r}; pass --format (csv, parquet, arrow, "
            "npz, mtx)")
    return found


EOS_MARKER = b"\xff\xff\xff\xff\x00\x00\x00\x00"
"""The end-of-stream marker that closes an Arrow IPC stream."""


def check_complete(path: Path, fmt: str) -> str | None:
    """Why a downloaded file is cut short, or None when its format shows it is whole.

    Parquet, NPZ (zip) and Arrow streams end in a footer/marker; Matrix Market states its entry
    count up front. CSV carries no such check: there the broken transfer is the signal.
    """
    import zipfile

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.ParquetFile(path).metadata  # noqa: B018 (reads and checks the footer)
        elif fmt == "npz":
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
                if bad is not None:
                    return f"member {bad} is corrupt"
        elif fmt == "arrow":
            with path.open("rb") as fh:
                fh.seek(0, 2)
                if fh.tell() < 8:
                    return "too short"
                fh.seek(-8, 2)
                if fh.read(8) != EOS_MARKER:
                    return "the Arrow stream has no end-of-stream marker"
        elif fmt == "mtx":
            with path.open("rb") as fh:
                line = fh.readline()
                while line.startswith(b"%"):
                    line = fh.readline()
                nnz = int(line.split()[2])
                entries, last = 0, b"\n"
                for row in fh:
                    entries += bool(row.strip())
                    last = row
            if not last.endswith(b"\n"):
                return "the last entry is cut off"
            if entries != nnz:
                return f"{entries:,} of the {nnz:,} entries its header announces"
    except Exception as exc:
        return f"unreadable ({exc})"
    return None


def _http_download(server: str, body: dict[str, Any], output: Path, token: str | None,
                   path: str = "/export/matrix") -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = server.rstrip("/") + path
    columns = (TextColumn("{task.description}"), DownloadColumn(), TransferSpeedColumn(),
               TimeElapsedColumn())
    try:
        _stream_to(url, body, output, headers, columns)
    except httpx.HTTPError as exc:
        raise fail(f"the download of {output.name} failed ({exc}); nothing was written") from None


def _stream_to(url: str, body: dict[str, Any], output: Path, headers: dict[str, str],
               columns: tuple[Any, ...]) -> None:
    import httpx

    with httpx.stream("POST", url, json=body, headers=headers, timeout=httpx.Timeout(
            30.0, read=600.0)) as response:
        if response.status_code != 200:
            response.read()
            try:
                detail = response.json().get("detail") or response.text
            except ValueError:
                detail = response.text
            raise fail(f"the server answered {response.status_code}: {detail}")
        with atomic_output(output) as fh, Progress(*columns, console=console) as bar:
            task = bar.add_task(f"downloading {output.name}", total=None)
            for block in response.iter_bytes(1 << 20):
                fh.write(block)
                bar.advance(task, len(block))
            fh.flush()
            problem = check_complete(Path(fh.name), body["format"])
            if problem:
                raise fail(f"the download of {output.name} is incomplete ({problem}); "
                            "nothing was written")


@export_app.command("matrix")
def matrix_cmd(
    output: Annotated[Path, typer.Argument(
        help="File to write; its suffix picks the format (.csv .parquet .arrows .npz .mtx).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")],
    body_ids: Annotated[list[str] | None, typer.Option(
        "--body-ids", help="Keep only these neurons (comma-separated; repeatable).")] = None,
    body_ids_file: Annotated[Path | None, typer.Option(
        help="A file of body ids (whitespace or comma separated).")] = None,
    types: Annotated[list[str] | None, typer.Option(
        "--type", help="Keep only neurons of these types (repeatable).")] = None,
    rois: Annotated[list[str] | None, typer.Option(
        "--roi", help="Count only synapses in these ROIs (repeatable; chemical).")] = None,
    min_weight: Annotated[int, typer.Option(help="Drop entries below this weight.")] = 1,
    synapse_type: Annotated[str, typer.Option(
        help="chemical, electrical, monoamine or neuropeptide.")] = "chemical",
    by_type: Annotated[bool, typer.Option(
        "--by-type", help="Collapse neurons into cell types (sums weights).")] = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="csv, parquet, arrow, npz or mtx (default: from the suffix).")] = None,
    neurons: Annotated[Path | None, typer.Option(
        help="Also write the neuron metadata table here (.csv/.parquet/.arrows).")] = None,
    embed_neurons: Annotated[bool, typer.Option(
        help="npz only: store the neuron metadata inside as neurons_<column> arrays.")] = False,
    server: Annotated[str | None, typer.Option(
        help="Download from a running API (e.g. http://127.0.0.1:8000) instead of reading "
             "Neo4j directly.")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="CONNECTOME_TOKEN", help="API token for --server.")] = None,
    version: Annotated[int | None, typer.Option(
        help="Version of the dataset (default: the current one).")] = None,
) -> None:
    """Export a connectivity matrix (whole dataset or a subset) to a file."""
    from connectome_query.export.matrix import Progress as ExportProgress
    from connectome_query.export.request import ExportError, MatrixRequest, split_names

    ids = _body_ids(body_ids, body_ids_file)
    type_list, roi_list = split_names(types), split_names(rois)
    request = MatrixRequest.from_lists(
        dataset, body_ids=ids or None, types=type_list or None, rois=roi_list or None,
        min_weight=min_weight, synapse_type=synapse_type,
        level="type" if by_type else "neuron", format=_format_for(output, fmt),
        neurons=embed_neurons, version=version,
    )
    table_format = None
    if neurons is not None:
        table_format = TABLE_FORMATS.get(neurons.suffix.lower())
        if table_format is None:
            raise typer.BadParameter("--neurons must end in .csv, .parquet or .arrows")
    try:
        request = request.normalized()
    except ExportError as exc:
        raise fail(exc.message) from None

    if server:
        body = {"dataset": request.dataset, "bodyIds": ids, "types": type_list, "rois": roi_list,
                "minWeight": request.min_weight, "synapseType": request.synapse_type,
                "level": request.level, "format": request.format,
                "neurons": request.neurons, "version": request.version}
        _http_download(server, body, output, token)
        if neurons is not None:
            _http_download(server, {**body, "format": table_format}, neurons, token,
                           path="/export/neurons")
        console.print(f"wrote {output}")
        return

    from connectome_query.export.formats import write_metadata
    from connectome_query.export.matrix import prepare, read_metadata, write
    from connectome_query.graphdb.driver import open_driver
    from connectome_query.graphdb.local_server import Neo4jServerError

    columns = (TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("neurons"), TimeElapsedColumn())
    try:
        with open_driver() as driver:
            with console.status("checking the request and reading the neuron index..."):
                plan = prepare(driver, request)
            with atomic_output(output) as fh, Progress(*columns, console=console) as bar:
                task = bar.add_task(f"exporting {output.name}", total=len(plan.index))

                def report(p: ExportProgress) -> None:
                    bar.update(task, completed=p.neurons_done,
                               description=f"{p.entries:,} entries")

                progress: Callable[[ExportProgress], None] = report
                stats = write(driver, plan, fh, progress)
            if neurons is not None and table_format is not None:
                table = plan.metadata if plan.metadata is not None else read_metadata(driver,
                                                                                      plan)
                with atomic_output(neurons) as fh:
                    write_metadata(table, table_format, fh)
    except ExportError as exc:
        raise fail(exc.message) from None
    except (Neo4jServerError, ValueError) as exc:
        raise fail(str(exc)) from None
    rows, cols = plan.shape
    console.print(f"wrote {output}: {rows:,} x {cols:,} matrix, {stats.entries:,} entries "
                  f"({output.stat().st_size / 1e6:.1f} MB)")
