"""``ultrassl data pack``: clips decoded once into WebDataset shards read back as the source.

The claims: a packed clip reads as its source (frames, times, spacing, audio, annotations); a
run over the packed manifest gets the same batches as over the source files with the same seed,
for every shipped objective and the downstream pipelines, on one process or shared across
ranks; the shards stream through ``webdataset.WebDataset``; packing runs as independent parts
that resume after a kill; damaged sources and shards give typed errors; nothing of the source
paths travels.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from data_tools.cli import main as data_main
from data_tools.pack import pack_part
from tests.sweeps import make_fetal_manifest
from ultrassl.data.datamodule import ManifestDataModule
from ultrassl.data.manifest import read_manifest, write_manifest
from ultrassl.engine.cli import UltrasslCLI
from ultrassl.errors import ClipReadError, CorruptFileError
from ultrassl.io import probe_clip, read_clip
from ultrassl.pipelines.plane_detection import PlaneDetectionPipeline
from ultrassl.pipelines.saliency import SaliencyPipeline

REPO = Path(__file__).resolve().parents[2]
PRETRAIN = REPO / "configs" / "pretrain"
#: the source folder's name stands for a hospital export named after a patient
PATIENT_FOLDER = "DOE_JOHN_1970"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_fetal_manifest(tmp_path_factory.mktemp("export") / PATIENT_FOLDER, n_sweeps=4, n_frames=20)


@pytest.fixture(scope="module")
def packed(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("packed")
    assert data_main(["pack", str(source), str(out), "--quiet"]) == 0
    return out / "manifest.csv"


def _tensors(batch, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a batch by its key path, paths and other text left out."""
    found = {}
    if isinstance(batch, torch.Tensor):
        return {prefix: batch}
    if isinstance(batch, dict):
        for key, value in batch.items():
            found.update(_tensors(value, f"{prefix}/{key}"))
    elif isinstance(batch, (list, tuple)):
        for i, value in enumerate(batch):
            found.update(_tensors(value, f"{prefix}/{i}"))
    return found


def _assert_same_batches(source_loader, packed_loader) -> int:
    count = 0
    for a, b in zip(source_loader, packed_loader, strict=True):
        ta, tb = _tensors(a), _tensors(b)
        assert ta.keys() == tb.keys()
        for key in ta:
            torch.testing.assert_close(ta[key], tb[key], rtol=0, atol=0, equal_nan=True, msg=key)
        count += 1
    return count


def test_packed_clips_read_as_their_sources(source, packed):
    sources, packs = read_manifest(source), read_manifest(packed)
    assert len(sources) == len(packs) == 4 and set(packs["format"]) == {"packed"}
    for column in ("split", "subject", "n_frames", "height", "width", "channels"):
        assert packs[column].tolist() == sources[column].tolist(), column
    assert packs["source_row"].astype(int).tolist() == [0, 1, 2, 3]
    for original, clip in zip(sources["path"], packs["path"]):
        a, b = read_clip(original), read_clip(clip)
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.timestamps_s, b.timestamps_s)
        assert a.spacing_mm == b.spacing_mm and a.fps == b.fps
        some = [7, 2, 2, 19]
        np.testing.assert_array_equal(read_clip(clip, some).frames, a.frames[some])
    for column in ("frame_labels", "fixations"):
        for original, copy in zip(sources[column], packs[column]):
            assert Path(copy).read_bytes() == Path(original).read_bytes()
            assert Path(copy).is_relative_to(packed.parent)


def test_nothing_of_the_source_paths_travels(packed):
    for path in packed.parent.rglob("*"):
        if path.is_file():
            assert PATIENT_FOLDER.encode() not in path.read_bytes(), path
            assert PATIENT_FOLDER not in str(path)


def _pretrain_module(config: Path, manifest: Path, tmp_path: Path) -> ManifestDataModule:
    pipeline = "--data.init_args.pipeline.init_args"
    cli = UltrasslCLI(args=[
        "-c", str(config), f"--data.init_args.manifest={manifest}", f"--trainer.default_root_dir={tmp_path}",
        "--data.init_args.batch_size=4", "--data.init_args.clips_per_video=2", "--data.init_args.num_workers=0",
        f"{pipeline}.size=[32, 40]", f"{pipeline}.num_frames=4", "--seed_everything=3",
    ], run=False)
    cli.datamodule.setup("fit")
    return cli.datamodule


ULTRASOUND_CONFIGS = sorted(p for p in PRETRAIN.glob("*.yaml")
                            if not p.stem.endswith(("_natural", "_gpu")))


@pytest.mark.parametrize("config", ULTRASOUND_CONFIGS, ids=lambda p: p.stem)
def test_every_objective_gets_the_same_batches_from_the_shards(config, source, packed, tmp_path):
    a = _pretrain_module(config, source, tmp_path / "source")
    b = _pretrain_module(config, packed, tmp_path / "packed")
    for epoch in (0, 1):
        la, lb = a.train_dataloader(), b.train_dataloader()
        la.sampler.set_epoch(epoch)
        lb.sampler.set_epoch(epoch)
        assert _assert_same_batches(la, lb) >= 1
    assert _assert_same_batches(a.val_dataloader(), b.val_dataloader()) >= 1


@pytest.mark.parametrize("pipeline", [PlaneDetectionPipeline, SaliencyPipeline], ids=["planes", "saliency"])
def test_downstream_pipelines_get_the_same_batches(pipeline, source, packed):
    modules = []
    for manifest in (source, packed):
        module = ManifestDataModule(manifest, pipeline(size=(32, 40)), batch_size=4, clips_per_video=3, seed=5)
        module.setup("fit")
        modules.append(module)
    assert _assert_same_batches(modules[0].train_dataloader(), modules[1].train_dataloader()) >= 1


def test_each_rank_reads_its_share_of_the_shards_as_of_the_files(source, packed):
    shares = {}
    for name, manifest in (("source", source), ("packed", packed)):
        module = ManifestDataModule(manifest, PlaneDetectionPipeline(size=(32, 40)), batch_size=2,
                                    clips_per_video=3, seed=11)
        module.setup("fit")
        for rank in (0, 1):
            module.trainer = SimpleNamespace(world_size=2, global_rank=rank)
            loader = module.train_dataloader()
            loader.sampler.set_epoch(2)
            shares[name, rank] = [(index, float(batch_clip.sum())) for batch in loader
                                  for index, batch_clip in zip(range(len(batch["clip"])), batch["clip"])]
    assert shares["source", 0] == shares["packed", 0] and shares["source", 1] == shares["packed", 1]
    assert shares["packed", 0] != shares["packed", 1]


def test_the_shards_stream_through_webdataset(source, packed):
    import webdataset

    listing = json.loads((packed.parent / "shards.json").read_text())["shards"]
    urls = [str(packed.parent / shard["url"]) for shard in listing]
    assert sum(shard["nsamples"] for shard in listing) == 4
    # raw bytes, decoded here: webdataset's default decoders include a video one we do not need
    samples = list(webdataset.WebDataset(urls, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [f"clip-{i:08d}" for i in range(4)]
    originals = read_manifest(source)
    for sample, path, split in zip(samples, originals["path"], originals["split"]):
        np.testing.assert_array_equal(np.load(io.BytesIO(sample["frames.npy"])), read_clip(path).frames)
        assert json.loads(sample["row.json"])["split"] == split
        assert len(json.loads(sample["info.json"])["timestamps_s"]) == 20


def test_parts_pack_independently_and_the_last_writes_the_manifest(source, packed, tmp_path):
    out = tmp_path / "parts"
    assert data_main(["pack", str(source), str(out), "--part", "1/2", "--quiet"]) == 0
    assert not (out / "manifest.csv").exists()
    # a killed attempt of part 0 left a half-written shard: the part is packed again from the start
    (out / "shards").mkdir(exist_ok=True)
    (out / "shards" / "part-0000-of-0002-000000.tar").write_bytes(b"half a tar")
    assert data_main(["pack", str(source), str(out), "--part", "0/2", "--quiet"]) == 0
    merged, whole = read_manifest(out / "manifest.csv"), read_manifest(packed)
    assert merged["source_row"].tolist() == whole["source_row"].tolist()
    assert len(list((out / "shards").glob("*.tar"))) == 2
    for a, b in zip(merged["path"], whole["path"]):
        np.testing.assert_array_equal(read_clip(a).frames, read_clip(b).frames)
    again = pack_part(source, out, part=(0, 2))
    assert again.skipped and again.manifest == out / "manifest.csv"
    assert data_main(["pack", str(source), str(out), "--part", "0/3", "--quiet"]) == 2  # another pack's folder


def test_resizing_scales_the_spacing(source, tmp_path):
    result = pack_part(source, tmp_path / "small", size=(24, 32))
    table = read_manifest(result.manifest)
    sources = read_manifest(source)
    clip = read_clip(table["path"][0])
    assert clip.frames.shape[1:3] == (24, 32) and (table["height"] == 24).all()
    original = read_clip(sources["path"][0])
    np.testing.assert_allclose(clip.spacing_mm, (original.spacing_mm[0] * 2, original.spacing_mm[1] * 2))


def test_a_damaged_source_is_a_refused_row_and_the_rest_packs(source, tmp_path, capsys):
    table = read_manifest(source)
    broken = tmp_path / "broken.dcm"
    data = Path(table["path"][0]).read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    table.loc[0, "path"] = str(broken)
    write_manifest(table, tmp_path / "with_damage.csv")
    assert data_main(["pack", str(tmp_path / "with_damage.csv"), str(tmp_path / "out"), "--quiet"]) == 1
    assert "1 clips could not be read" in capsys.readouterr().out
    result = read_manifest(tmp_path / "out" / "manifest.csv", status=None)
    assert result["status"].tolist() == ["refused", "ok", "ok", "ok"]
    assert result["error"][0].startswith(("CorruptFileError", "FrameCountMismatchError"))
    assert "broken.dcm" not in (tmp_path / "out" / "manifest.csv").read_text()


def test_a_damaged_shard_gives_a_typed_error_naming_the_clip(packed, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(packed.parent, copy)
    shard = next((copy / "shards").glob("*.tar"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 3])  # an interrupted copy
    table = read_manifest(copy / "manifest.csv")
    last = table["path"].iloc[-1]
    with pytest.raises(ClipReadError) as caught:
        read_clip(last)
    assert isinstance(caught.value, CorruptFileError) and caught.value.path == last
    with pytest.raises(ClipReadError, match="no member|not a readable"):
        probe_clip(f"{str(shard)}::clip-99999999")


def test_audio_travels_with_the_frames(tmp_path):
    out = tmp_path / "motion"
    assert data_main(["synth", str(out), "--kind", "motion", "--n", "1", "--frames", "12", "--quiet"]) == 0
    table = read_manifest(out / "manifest.csv").head(2)
    assert table["has_audio"].all()
    write_manifest(table, tmp_path / "two.csv")
    result = pack_part(tmp_path / "two.csv", tmp_path / "packed")
    packs = read_manifest(result.manifest)
    assert packs["has_audio"].all()
    for original, clip in zip(table["path"], packs["path"]):
        a = read_clip(original, [3, 4, 5, 6], with_audio=True)
        b = read_clip(clip, [3, 4, 5, 6], with_audio=True)
        assert a.audio_sample_rate == b.audio_sample_rate
        assert abs(a.audio.shape[1] - b.audio.shape[1]) <= 1
        n = min(a.audio.shape[1], b.audio.shape[1])
        np.testing.assert_allclose(a.audio[:, :n], b.audio[:, :n], atol=1e-6)
    # the shipped configs read the packed manifest like any other
    assert yaml.safe_load((PRETRAIN / "cvrl.yaml").read_text())["data"]["class_path"].endswith("ManifestDataModule")


class _Batches:
    """A Lightning callback recording every training batch's tensors and the step's loss."""

    def __init__(self):
        import lightning as L

        recorder = self

        class Record(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                recorder.batches.append({k: v.clone() for k, v in _tensors(batch).items()})

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                recorder.losses.append(float(outputs["loss"]))

        self.batches: list[dict[str, torch.Tensor]] = []
        self.losses: list[float] = []
        self.callback = Record()


def test_a_pretraining_run_on_the_shards_sees_the_same_batches_and_losses(source, packed, tmp_path):
    runs = {}
    for name, manifest in (("source", source), ("packed", packed)):
        record = _Batches()
        UltrasslCLI(args=[
            "fit", "-c", str(PRETRAIN / "order_geometry.yaml"), f"--data.init_args.manifest={manifest}",
            f"--trainer.default_root_dir={tmp_path / name}", "--trainer.max_epochs=2", "--trainer.logger=false",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            "--trainer.limit_val_batches=0", "--model.init_args.backbone_kwargs.channels=[4,8,8]",
            "--model.init_args.head_hidden=16", "--data.init_args.batch_size=4", "--data.init_args.num_workers=0",
            "--data.init_args.clips_per_video=4", "--data.init_args.pipeline.init_args.size=[32, 40]",
        ], trainer_defaults={"callbacks": [record.callback]})
        runs[name] = record
    assert len(runs["source"].batches) == len(runs["packed"].batches) == 6  # 2 epochs x 3 training sweeps x 4 / 4
    for a, b in zip(runs["source"].batches, runs["packed"].batches):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True, msg=key)
    assert runs["source"].losses == pytest.approx(runs["packed"].losses, rel=1e-6)


def test_the_loop_cache_reads_packed_clips_without_keeping_a_copy(source, packed):
    from ultrassl.io.cache import LoopCache

    cache = LoopCache(64 * 2**20)
    clip = read_manifest(packed)["path"][0]
    frames = cache.read(clip, [3, 1]).frames
    np.testing.assert_array_equal(frames, read_clip(read_manifest(source)["path"][0], [3, 1]).frames)
    assert len(cache) == 0 and cache.misses == 0
