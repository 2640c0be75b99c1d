"""The EM volume read from object storage: an S3 server (moto, on loopback) holds a synthetic
EM directory uploaded with the object API; `reconstruct` reads it through TensorStore's s3
kvstore on 2 worker processes and gives what the same volume gives from the local disk. Bad
locations are clear errors naming them. (gs:// cannot be reached from here: untested.)"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from connectome_query.cli.main import app
from connectome_query.reconstruct import io, location, pipeline, synth, synthetic_em
from connectome_query.reconstruct.engine.cluster import ClusterSpec, worker_env
from connectome_query.reconstruct.errors import ReconstructError

BUCKET = "em-volumes"
BLOCK = (12, 56, 56)  # divides neither 20 nor 96: 8 blocks
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """A moto S3 server on 127.0.0.1 and a boto3 client of it; the environment names it
    (`CONNECTOME_S3_ENDPOINT`) with test credentials while the module runs."""
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**S3_ENV, "CONNECTOME_S3_ENDPOINT": endpoint}.items():
            mp.setenv(k, v)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        try:
            yield client
        finally:
            server.stop()


def _upload(client: Any, local: Path, prefix: str,
            volume_json: dict[str, Any] | None = None) -> str:
    """Every file under `local` as an object under `prefix` (put_object); volume.json
    replaced by `volume_json` when given. Returns the s3:// location."""
    for f in sorted(local.rglob("*")):
        if f.is_file():
            key = f"{prefix}/{f.relative_to(local).as_posix()}"
            body = f.read_bytes()
            if f.name == "volume.json" and f.parent == local and volume_json is not None:
                body = json.dumps(volume_json).encode()
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{prefix}"


@pytest.fixture(scope="module")
def em_local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("s3em") / "em"
    synthetic_em.write_synthetic_em(
        d, synth.SynthConfig((20, 96, 96), (40.0, 16.0, 16.0), "clean", 5))
    return d


@pytest.fixture(scope="module")
def s3_cluster(s3: Any) -> Iterator[ClusterSpec]:
    """Two worker processes started with the S3 server's environment (a cluster's workers
    need the endpoint and credentials as the client does)."""
    from distributed import LocalCluster

    env = {**worker_env(1), **{k: os.environ[k] for k in (*S3_ENV, "CONNECTOME_S3_ENDPOINT")}}
    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=40, env=env)
    try:
        yield ClusterSpec(scheduler=lc.scheduler_address)
    finally:
        with contextlib.suppress(TimeoutError):
            lc.close(timeout=60)


def _outputs(run_dir: Path) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    seg = io.open_zarr(run_dir / "segmentation.zarr").read().result()
    syn = pd.read_parquet(run_dir / "synapses.parquet")
    return np.asarray(seg), syn, json.loads((run_dir / "metrics.json").read_text())


def test_reconstruct_from_s3_equals_the_local_disk(
        s3: Any, s3_cluster: ClusterSpec, em_local: Path, tmp_path: Path) -> None:
    """The same volume from the local disk, from S3 as zarr v3, and from S3 with the image as
    neuroglancer precomputed: identical segmentation, synapse table and scores."""
    zarr_url = _upload(s3, em_local, "vols/em")
    info = json.loads((em_local / "volume.json").read_text())
    pc_url = _upload(s3, em_local, "vols/em-precomputed",
                     {**info, "image": "image.precomputed"})
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [
        {"Key": o["Key"]} for o in s3.list_objects_v2(
            Bucket=BUCKET, Prefix="vols/em-precomputed/image.zarr/")["Contents"]]})
    runs = {}
    for name, where in (("local", str(em_local)), ("s3", zarr_url), ("s3 precomputed", pc_url)):
        out = tmp_path / name.replace(" ", "_")
        pipeline.reconstruct(where, out, block=BLOCK, spec=s3_cluster)
        runs[name] = _outputs(out)
        assert json.loads((out / "run.json").read_text())["source"] == \
            location.describe(where)
    seg, syn, metrics = runs["local"]
    assert len(np.unique(seg)) > 3 and len(syn) > 3  # something to compare
    for name in ("s3", "s3 precomputed"):
        other_seg, other_syn, other_metrics = runs[name]
        np.testing.assert_array_equal(other_seg, seg, err_msg=name)
        pd.testing.assert_frame_equal(other_syn, syn, obj=name)
        assert other_metrics == metrics, name


def test_the_s3_image_reads_as_the_local_one(s3: Any, em_local: Path) -> None:
    """The opener every stage uses gives the local voxels from both S3 formats."""
    url = _upload(s3, em_local, "vols/reads")
    local = io.read_image(em_local, io.read_volume_info(em_local))
    for image in ("image.zarr", "image.precomputed"):
        st = io.open_array(location.join(url, image), "EM image")
        np.testing.assert_array_equal(np.asarray(st[3:17, 5:70, 1:95].read().result()),
                                      local[3:17, 5:70, 1:95], err_msg=image)
    bare = io.read_volume_info(location.join(url, "image.precomputed"))
    assert bare["shape_zyx"] == [20, 96, 96] and bare["voxel_size_nm"] == [16.0, 16.0, 40.0]


def test_an_object_exists_by_its_metadata(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="probe/volume.json", Body=b"{}" * 1000)
    assert location.exists(f"s3://{BUCKET}/probe/volume.json", "probe")
    assert not location.exists(f"s3://{BUCKET}/probe/info", "probe")
    assert not location.exists(f"s3://{BUCKET}/probe", "probe")  # a prefix, not an object


@pytest.mark.parametrize("where, says", [
    (f"s3://no-such-bucket-{os.getpid()}/em", "no such bucket or path"),
    (f"s3://{BUCKET}/no/such/volume", "no such bucket or path"),
    ("ftp://host/em", "unknown scheme 'ftp'"),
    ("s3:///em", "no bucket"),
    ("file://relative/em", "absolute path"),
])
def test_bad_em_location_is_a_clear_error(s3: Any, tmp_path: Path, where: str,
                                          says: str) -> None:
    r = CliRunner().invoke(app, ["reconstruct", where, str(tmp_path / "run"), "--quiet"])
    text = " ".join(r.output.split())
    assert r.exit_code == 1, text
    assert says in text and where in text, text
    assert not (tmp_path / "run").exists()


def test_missing_credentials_name_the_location(s3: Any, em_local: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    url = _upload(s3, em_local, "vols/private")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ReconstructError, match=r"cannot read s3://.*vols/private/.*credentials"):
        io.read_volume_info(url)


def test_an_object_store_run_directory_is_refused(tmp_path: Path, em_local: Path) -> None:
    r = CliRunner().invoke(app, ["reconstruct", str(em_local), f"s3://{BUCKET}/run",
                                 "--quiet"])
    assert r.exit_code == 2
    assert "must be a local path" in " ".join(r.output.split())


def test_locations_map_to_kvstores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in (*location.S3_ENDPOINT_VARS, *location.S3_REGION_VARS):
        monkeypatch.delenv(k, raising=False)
    assert location.kvstore("s3://b/x/y/") == {"driver": "s3", "bucket": "b", "path": "x/y/"}
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert location.kvstore("s3://b") == {"driver": "s3", "bucket": "b", "path": "",
                                          "endpoint": "http://127.0.0.1:9000",
                                          "aws_region": "eu-west-1"}
    monkeypatch.setenv("CONNECTOME_S3_ENDPOINT", "http://127.0.0.1:9001")
    assert location.kvstore("s3://b/k")["endpoint"] == "http://127.0.0.1:9001"
    assert location.kvstore("gs://g/a//b") == {"driver": "gcs", "bucket": "g", "path": "a/b/"}
    assert location.kvstore(f"file://{tmp_path}/em") == {"driver": "file",
                                                         "path": str(tmp_path / "em")}
    assert location.parse(str(tmp_path)) == tmp_path
    assert location.join("s3://b/em", "truth", "x.zarr") == "s3://b/em/truth/x.zarr"
    assert location.join(tmp_path, "truth") == tmp_path / "truth"
