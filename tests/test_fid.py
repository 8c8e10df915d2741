"""FID/KID (metrics/fid.py, evaluate.py) and the in-training evaluation (--eval_freq).

No test downloads anything: the Inception weights are a randomly initialised network of the
FID architecture saved to a temporary file (torchvision's Inception3 with 1008 classes has
exactly the FID network's parameter names), which is all an equality test with pytorch-fid needs.
(With so few images the covariances are singular; pytorch-fid then adds 1e-6 to the diagonal,
in our call and in its own alike.)
"""
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import pytorch_fid.fid_score
import pytorch_fid.inception
import torch
import torchvision
from PIL import Image

import train
from conftest import ROOT, make_unaligned, write_images
from metrics import fid, training_eval
from util.errors import UserError


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008,
                                          init_weights=True)
    # He initialisation keeps the activations of 90-odd layers O(1) (torchvision's default init
    # grows them to ~1e9, where the covariance square root of a few images falls apart).
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / "random_inception.pth"
    torch.save(net.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_images(root / "fake", 2, 48, seed=1)
    write_images(root / "real", 3, 64, seed=2)
    write_images(root / "real_odd", 1, 50, seed=3)  # one image of another size
    os.replace(root / "real_odd" / "img_000.png", root / "real" / "img_odd.png")
    (root / "real" / "notes.txt").write_text("not an image")  # ignored, as by pytorch-fid
    return root


def whitened(n, d, seed):
    """n x d samples with sample mean exactly 0 and sample covariance exactly I."""
    z = np.random.default_rng(seed).standard_normal((n, d))
    z -= z.mean(axis=0)
    cov = z.T @ z / (n - 1)
    vals, vecs = np.linalg.eigh(cov)
    return z @ vecs @ np.diag(vals ** -0.5) @ vecs.T


def test_frechet_distance_equals_the_closed_form_for_two_gaussians():
    # Sample statistics are exact by construction: N(mu1, diag(s1)) vs N(mu2, diag(s2)), whose
    # distance is |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    d = 8
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.5, 3, size=d), rng.uniform(0.5, 3, size=d)
    f1 = mu1 + whitened(60, d, 1) * np.sqrt(s1)
    f2 = mu2 + whitened(80, d, 2) * np.sqrt(s2)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert fid.fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-9)
    assert fid.fid_from_features(f1, f1) == pytest.approx(0, abs=1e-9)


def test_kid_of_a_set_against_itself_is_about_zero():
    # Subsets of both sides share ~5% of their points, which biases the estimate slightly
    # negative; it stays within its own spread and far below a small shift of the distribution.
    features = np.random.default_rng(0).normal(size=(4000, 64))
    same, same_std = fid.kid_from_features(features, features, subset_size=200)
    shifted, _ = fid.kid_from_features(features, features + 0.2, subset_size=200)
    assert abs(same) < same_std and abs(same) < 0.05 * shifted
    assert shifted > 0.1


def test_in_memory_images_give_the_features_of_their_png_files(tmp_path, weights):
    model = fid.load_inception(weights)
    images = [np.random.default_rng(i).integers(0, 256, (40, 52, 3), dtype=np.uint8) for i in range(3)]
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    from_files = fid.features_of_files(fid.list_images(tmp_path), model)
    assert np.array_equal(fid.features_of_images(images, model), from_files)  # same batches: exact
    # other batch sizes pick other convolution kernels: float noise only
    np.testing.assert_allclose(fid.features_of_images(images, model, batch_size=2), from_files, rtol=1e-5)


def test_real_features_are_cached_by_folder_contents(folders, weights, tmp_path):
    model = fid.load_inception(weights)
    files = fid.list_images(folders / "fake")
    first = fid.cached_features(files, model, weights, tmp_path)
    assert len(os.listdir(tmp_path)) == 1
    assert np.array_equal(fid.cached_features(files, model, weights, tmp_path), first)
    assert len(os.listdir(tmp_path)) == 1  # read back, not computed again
    assert np.array_equal(fid.cached_features(files[:-1], model, weights, tmp_path), first[:-1])
    assert len(os.listdir(tmp_path)) == 2  # other contents, other entry


def test_missing_weights_say_which_file_to_get_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(UserError) as err:
        fid.resolve_weights(None)
    message = str(err.value)
    assert pytorch_fid.inception.FID_WEIGHTS_URL in message
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / fid.WEIGHTS_FILE) in message
    with pytest.raises(UserError, match="no such file"):
        fid.resolve_weights(str(tmp_path / "nowhere.pth"))


def evaluate_cli(args, cwd, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py")] + args, cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def test_evaluate_cli_equals_pytorch_fid_and_appends_a_full_record(tmp_path, folders, weights,
                                                                     monkeypatch):
    fake = tmp_path / "results" / "exp" / "test_latest" / "images" / "fake_B"
    fake.parent.mkdir(parents=True)
    os.symlink(folders / "fake", fake)
    args = [str(fake), str(folders / "real"), "--inception_weights", weights, "--cache_dir",
            str(tmp_path / "cache")]
    proc = evaluate_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "FID " in proc.stdout and "protocol paper" in proc.stdout
    record = json.loads((tmp_path / "results" / "exp" / "metrics.jsonl").read_text())
    assert record["protocol"] == "paper" and record["n_fake"] == 2 and record["n_real"] == 4
    assert "differ in size: one image per Inception pass" in proc.stdout
    assert record["weights_match_paper"] is False and "not the published FID Inception" in proc.stdout
    assert record["weights_sha256"] == fid.weights_id(weights)
    assert record["fake_dir"] == str(fake) and "pool3" in record["feature_extractor"]
    assert {"fid", "kid", "kid_std", "time", "pytorch-fid_version"} <= set(record)

    # pytorch-fid itself, on the same folders with the same weights
    monkeypatch.setattr(pytorch_fid.inception, "load_state_dict_from_url",
                        lambda *args, **kwargs: torch.load(weights, weights_only=True))
    theirs = pytorch_fid.fid_score.calculate_fid_given_paths(  # batch 1: their loader cannot mix sizes
        [str(fake), str(folders / "real")], batch_size=1, device="cpu", dims=2048, num_workers=0)
    assert record["fid"] == pytest.approx(theirs, rel=1e-9)


def test_evaluate_cli_bad_inputs_are_one_line_errors(tmp_path, folders, weights):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes((folders / "fake" / "img_000.png").read_bytes())
    (broken / "b.png").write_bytes(b"not a png")
    text_weights = tmp_path / "text.pth"
    text_weights.write_text("not weights")
    cases = [([str(broken), str(folders / "real"), "--inception_weights", weights], "cannot read image"),
             ([str(folders / "fake"), str(folders / "real"), "--inception_weights", weights,
               "--device", "cuda:7" if not torch.cuda.is_available() else "bogus"], "--device"),
             ([str(folders / "fake"), str(folders / "real"), "--inception_weights", str(text_weights)],
              "does not hold the FID Inception weights")]
    for args, needle in cases:
        proc = evaluate_cli(args, tmp_path)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and needle in proc.stderr


def test_evaluate_cli_without_weights_says_where_to_put_them(tmp_path, folders):
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "empty_torch_home"))
    missing = evaluate_cli([str(folders / "fake"), str(folders / "real")], tmp_path, env)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert missing.stderr.startswith("error: FID Inception weights not found: download https://")
    assert not (folders / "metrics.jsonl").exists()


# ---------------------------------------------------------------------------- during training
SMALL = ("--load_size 36 --crop_size 32 --gpu_ids -1 --display_id 0 --ngf 8 --ndf 8 --num_threads 0 "
         "--print_freq 100 --seed 1")


class ScriptedEvaluator:
    """Stands in for TrainingEvaluator: the FID of epoch e is SCORES[e]."""
    SCORES = {1: 30.0, 2: 10.0, 3: 20.0}

    def __init__(self, opt, device):
        self.epoch = 0

    def __call__(self, netG):
        self.epoch += 1
        return {"fid": self.SCORES[self.epoch], "n_fake": 3, "n_real": 4}


def test_best_checkpoint_is_the_lowest_score(tmp_path, monkeypatch, weights):
    monkeypatch.setattr(train, "TrainingEvaluator", ScriptedEvaluator)
    root = make_unaligned(tmp_path / "data")
    argv = (f"--dataroot {root} --checkpoints_dir {tmp_path}/ck --name best {SMALL} --n_epochs 3 "
            f"--n_epochs_decay 0 --eval_freq 1 --save_epoch_freq 1 --inception_weights {weights}").split()
    assert train.main(argv) == 0
    folder = tmp_path / "ck" / "best"
    best = json.loads((folder / "best_net_G.json").read_text())
    assert (best["epoch"], best["value"], best["metric"]) == (2, 10.0, "fid")
    saved, epoch2 = (torch.load(folder / f, weights_only=True) for f in ("best_net_G.pth", "2_net_G.pth"))
    assert all(torch.equal(saved[k], epoch2[k]) for k in saved)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["fid"]) for r in records] == [(1, 30.0), (2, 10.0), (3, 20.0)]


def test_evaluation_during_training_leaves_training_unchanged(tmp_path, weights, monkeypatch):
    # Two epochs, evaluated after the first: any random draw the evaluation leaked would change
    # the second epoch.  The feature pass is made to draw from every generator first, so the
    # test proves the restoring, not merely that the evaluation happens to draw nothing.
    real_features = fid.features_of_images

    def drawing_features(*args, **kwargs):
        random.random(), np.random.rand(), torch.rand(1)
        return real_features(*args, **kwargs)
    monkeypatch.setattr(fid, "features_of_images", drawing_features)
    root = make_unaligned(tmp_path / "data")
    common = (f"--dataroot {root} --checkpoints_dir {tmp_path}/ck {SMALL} --n_epochs 1 --n_epochs_decay 1 "
              "--progress off")
    assert train.main(f"{common} --name plain".split()) == 0
    assert train.main(f"{common} --name evaluated --eval_freq 1 --inception_weights {weights} "
                      f"--fid_cache_dir {tmp_path}/cache --tensorboard".split()) == 0
    folder = tmp_path / "ck" / "evaluated"
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["n_fake"] == 3 and records[0]["n_real"] == 4 and records[0]["protocol"] == "paper"
    assert records[0]["source_dir"] == os.path.join(root, "testA") and records[0]["weights_sha256"]
    assert (folder / "best_net_G.pth").is_file()
    assert json.loads((folder / "best_net_G.json").read_text())["epoch"] in (1, 2)
    assert [f for f in os.listdir(folder / "tensorboard") if f.startswith("events.out.tfevents")]
    for net in "GDF":
        a, b = (torch.load(tmp_path / "ck" / run / f"latest_net_{net}.pth", weights_only=True)
                for run in ("plain", "evaluated"))
        assert all(torch.equal(a[k], b[k]) for k in a), net


class FailingEvaluator(ScriptedEvaluator):
    def __call__(self, netG):
        raise ValueError("all input arrays must have the same shape")


def test_a_failing_evaluation_does_not_end_the_run(tmp_path, monkeypatch, weights, capsys):
    monkeypatch.setattr(train, "TrainingEvaluator", FailingEvaluator)
    root = make_unaligned(tmp_path / "data")
    argv = (f"--dataroot {root} --checkpoints_dir {tmp_path}/ck --name fails {SMALL} --n_epochs 2 "
            f"--n_epochs_decay 0 --eval_freq 1 --inception_weights {weights}").split()
    assert train.main(argv) == 0
    assert capsys.readouterr().out.count("warning: evaluation at epoch") == 2
    assert (tmp_path / "ck" / "fails" / "latest_net_G.pth").is_file()


def test_a_new_run_does_not_inherit_an_earlier_best(tmp_path):
    (tmp_path / "best_net_G.json").write_text(json.dumps({"metric": "fid", "value": 1.0, "epoch": 9}))
    assert training_eval.BestCheckpoint(tmp_path, "fid", resumed=True).best["epoch"] == 9
    assert training_eval.BestCheckpoint(tmp_path, "kid", resumed=True).best is None
    fresh = training_eval.BestCheckpoint(tmp_path, "fid", resumed=False)
    saved = []
    assert fresh.update({"fid": 50.0, "epoch": 1}, lambda: saved.append(1)) and saved == [1]
    assert not fresh.update({"fid": 60.0, "epoch": 2}, lambda: saved.append(2)) and saved == [1]
    assert json.loads((tmp_path / "best_net_G.json").read_text())["epoch"] == 1


def test_eval_freq_checks_its_needs_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    root = make_unaligned(tmp_path / "data", splits=("train",))
    argv = f"--dataroot {root} --checkpoints_dir {tmp_path}/ck --name e {SMALL} --eval_freq 1".split()
    with pytest.raises(UserError, match="needs a test split"):
        train.main(argv)
    make_unaligned(tmp_path / "data", splits=("test",))
    with pytest.raises(UserError, match="FID Inception weights not found"):
        train.main(argv)
    assert not (tmp_path / "ck" / "e").exists()
