"""util.util, util.html and util.visualizer: image conversion, gallery pages, loss logs, visdom."""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from util import html, util
from util.visualizer import Visualizer, save_images


# --------------------------------------------------------------------------------- util.util
def test_tensor2im_maps_minus1_0_1_to_0_127_255_and_clamps():
    t = torch.tensor([-1.0, 0.0, 1.0, 3.0, -7.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    im = util.tensor2im(t)
    assert im.dtype == np.uint8 and im.shape == (1, 5, 3)  # HWC
    assert im[0, :, 0].tolist() == [0, 127, 255, 255, 0]


def test_tensor2im_tiles_one_channel_and_uses_batch_item_0_only():
    t = torch.stack([torch.full((1, 2, 3), -1.0), torch.full((1, 2, 3), 1.0)])  # (2, 1, 2, 3)
    im = util.tensor2im(t)
    assert im.shape == (2, 3, 3)
    assert (im == 0).all()  # item 1 (all white) is ignored


def test_tensor2im_keeps_channel_order_and_passes_other_inputs_through():
    t = torch.zeros(1, 3, 2, 2)
    t[0, 0] = 1.0  # red channel
    im = util.tensor2im(t)
    assert im[0, 0].tolist() == [255, 127, 127]
    assert util.tensor2im("not an image") == "not an image"
    assert util.tensor2im(np.full((2, 2, 3), 9.7)).dtype == np.uint8


def test_save_image_writes_png_and_leaves_no_temp_file(tmp_path):
    array = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    path = tmp_path / "a.png"
    util.save_image(array, str(path))
    assert np.array_equal(np.asarray(Image.open(path)), array)
    assert os.listdir(tmp_path) == ["a.png"]
    with pytest.raises(ValueError):
        util.save_image(array, str(tmp_path / "a.notanimage"))
    assert os.listdir(tmp_path) == ["a.png"]


@pytest.mark.parametrize("text, value", [
    ("yes", True), ("TRUE", True), ("t", True), ("Y", True), ("1", True), (True, True),
    ("no", False), ("False", False), ("f", False), ("N", False), ("0", False), (False, False)])
def test_str2bool_accepts_the_original_spellings(text, value):
    assert util.str2bool(text) is value


def test_str2bool_rejects_anything_else_through_argparse():
    with pytest.raises(argparse.ArgumentTypeError):
        util.str2bool("maybe")
    parser = argparse.ArgumentParser()
    parser.add_argument("--flag", type=util.str2bool, nargs="?", const=True, default=False)
    assert parser.parse_args(["--flag"]).flag is True
    assert parser.parse_args(["--flag", "no"]).flag is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--flag", "2"])


def test_mkdirs_accepts_one_path_or_a_list(tmp_path):
    util.mkdirs(str(tmp_path / "a" / "b"))
    util.mkdirs([str(tmp_path / "c"), str(tmp_path / "a" / "b")])
    assert (tmp_path / "a" / "b").is_dir() and (tmp_path / "c").is_dir()


# --------------------------------------------------------------------------------- util.html
def test_html_page_links_images_under_images_folder(tmp_path):
    page = html.HTML(str(tmp_path / "web"), "My title", refresh=5)
    assert page.get_image_dir() == str(tmp_path / "web" / "images")
    assert os.path.isdir(page.get_image_dir())
    page.add_header("epoch [1]")
    page.add_images(["x.png", "y.png"], ["cap x", "cap y"], ["x_big.png", "y.png"], width=123)
    page.save()
    text = (tmp_path / "web" / "index.html").read_text()
    assert "<title>My title</title>" in text
    assert 'http-equiv="refresh"' in text and 'content="5"' in text
    assert "<h3>epoch [1]</h3>" in text
    assert 'href="images/x_big.png"' in text and 'src="images/x.png"' in text
    assert 'style="width:123px"' in text and "<p>cap y</p>" in text
    assert 'style="table-layout: fixed;"' in text
    assert text.count("<tr>") == 1 and text.count("<td") == 2
    assert sorted(os.listdir(tmp_path / "web")) == ["images", "index.html"]


def test_save_images_uses_label_folders_and_source_stem(tmp_path):
    page = html.HTML(str(tmp_path / "web"), "t")
    visuals = {"real_A": torch.zeros(1, 3, 8, 8), "fake_B": torch.ones(1, 3, 8, 8)}
    save_images(page, visuals, ["/data/testA/horse_7.jpg", "/data/testA/other.jpg"], width=64)
    page.save()
    for label in visuals:
        assert (tmp_path / "web" / "images" / label / "horse_7.png").is_file()
    assert not (tmp_path / "web" / "images" / "real_A" / "other.png").exists()
    text = (tmp_path / "web" / "index.html").read_text()
    assert "<h3>horse_7</h3>" in text
    assert 'src="images/fake_B/horse_7.png"' in text and 'style="width:64px"' in text
    assert np.asarray(Image.open(tmp_path / "web/images/fake_B/horse_7.png")).max() == 255


# --------------------------------------------------------------------------------- visualizer
def make_opt(tmp_path, **overrides):
    opt = dict(name="exp", checkpoints_dir=str(tmp_path), display_id=0,
               display_server="http://127.0.0.1", display_port=free_port(), display_env="test",
               display_ncols=4, display_winsize=256, no_html=False, isTrain=True)
    opt.update(overrides)
    return SimpleNamespace(**opt)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_tensorboard_env(monkeypatch):
    monkeypatch.delenv("tensorboard_base_url", raising=False)


def test_visualizer_creates_folders_and_log_header(tmp_path, capsys):
    Visualizer(make_opt(tmp_path))
    out = capsys.readouterr().out
    assert out == f"create web directory {tmp_path / 'exp' / 'web'}...\n"  # display_id 0: silent
    assert (tmp_path / "exp" / "web" / "images").is_dir()
    lines = (tmp_path / "exp" / "loss_log.txt").read_text().splitlines()
    assert lines[0].startswith("================ Training Loss (")
    assert lines[0].endswith(") ================")


def test_no_web_folder_at_test_time_or_with_no_html(tmp_path):
    Visualizer(make_opt(tmp_path, name="a", isTrain=False))
    Visualizer(make_opt(tmp_path, name="b", no_html=True))
    assert not (tmp_path / "a" / "web").exists() and not (tmp_path / "b" / "web").exists()


def test_print_current_losses_text_and_jsonl(tmp_path, capsys):
    vis = Visualizer(make_opt(tmp_path))
    capsys.readouterr()
    losses = {"G_GAN": 0.41234567891, "D_real": 0.2335, "NCE": 5.9}
    vis.print_current_losses(1, 100, losses, 0.1234, 0.0016, total_iters=100, lr=2e-4)
    vis.print_current_losses(2, 4, {"G_GAN": 1.0}, 1.0, 2.0)
    expected = ("(epoch: 1, iters: 100, time: 0.123, data: 0.002) "
                "G_GAN: 0.412 D_real: 0.234 NCE: 5.900 ")
    assert capsys.readouterr().out.splitlines()[0] == expected
    log = (tmp_path / "exp" / "loss_log.txt").read_text().split("\n")
    assert log[1] == expected
    assert log[2] == "(epoch: 2, iters: 4, time: 1.000, data: 2.000) G_GAN: 1.000 "
    records = [json.loads(line) for line in (tmp_path / "exp" / "loss_log.jsonl").open()]
    assert records[0] == {"epoch": 1, "iters": 100, "time": 0.1234, "data": 0.0016,
                          "losses": losses, "total_iters": 100, "lr": 2e-4}
    assert records[0]["losses"]["G_GAN"] == 0.41234567891  # full precision, not 3 decimals
    assert records[1]["losses"] == {"G_GAN": 1.0} and "lr" not in records[1]


def test_display_current_results_writes_epoch_images_and_index(tmp_path):
    vis = Visualizer(make_opt(tmp_path))
    visuals = {"real_A": torch.zeros(1, 3, 8, 8), "fake_B": -torch.ones(1, 3, 8, 8)}
    img_dir = tmp_path / "exp" / "web" / "images"
    vis.display_current_results(visuals, 1, save_result=False)  # first of the epoch: saved
    assert (img_dir / "epoch001_fake_B.png").is_file()
    os.remove(img_dir / "epoch001_fake_B.png")
    vis.display_current_results(visuals, 1, save_result=False)  # already saved this epoch
    assert not (img_dir / "epoch001_fake_B.png").exists()
    vis.reset()
    vis.display_current_results(visuals, 2, save_result=False)
    text = (tmp_path / "exp" / "web" / "index.html").read_text()
    assert "<title>Experiment name = exp</title>" in text
    assert text.index("<h3>epoch [2]</h3>") < text.index("<h3>epoch [1]</h3>")
    assert 'src="images/epoch001_fake_B.png"' in text and 'src="images/epoch002_real_A.png"' in text
    assert 'style="width:256px"' in text
    assert np.asarray(Image.open(img_dir / "epoch002_fake_B.png")).max() == 0


def test_plot_history_is_kept_without_visdom(tmp_path):
    vis = Visualizer(make_opt(tmp_path))
    vis.plot_current_losses(1, 0.5, {"G": 1.0, "D": 2.0})
    vis.plot_current_losses(1, 0.75, {"G": 3.0, "D": 4.0})
    assert vis.plot_data["G_D"] == {"X": [1.5, 1.75], "Y": [[1.0, 2.0], [3.0, 4.0]],
                                    "legend": ["G", "D"]}


def other_lines(capsys):
    """Captured stdout lines except the expected web-folder notice."""
    out = capsys.readouterr().out.splitlines()
    return [line for line in out if not line.startswith("create web directory")]


def exercise(vis):
    visuals = {"real_A": torch.zeros(1, 3, 8, 8), "fake_B": torch.ones(1, 3, 8, 8),
               "real_B": torch.zeros(1, 3, 8, 8)}
    vis.plot_current_losses(1, 0.5, {"G": 1.0, "D": 2.0})
    vis.display_current_results(visuals, 1, save_result=True)
    vis.plot_current_losses(1, 1.0, {"G": 0.5, "D": 1.5})


def test_requested_visdom_without_server_warns_once_and_carries_on(tmp_path, capsys):
    start = time.monotonic()
    vis = Visualizer(make_opt(tmp_path, display_id=1))
    exercise(vis)
    exercise(vis)
    assert time.monotonic() - start < 3.0
    warnings = other_lines(capsys)
    assert len(warnings) == 1 and warnings[0].startswith("warning: --display_id 1 asks for visdom")
    assert vis.vis is None
    assert (tmp_path / "exp" / "web" / "images" / "epoch001_fake_B.png").exists()


def test_auto_visdom_without_server_prints_one_notice(tmp_path, capsys):
    vis = Visualizer(make_opt(tmp_path, display_id=None))
    exercise(vis)
    notices = other_lines(capsys)
    assert len(notices) == 1 and "--display_id 0" in notices[0] and "no server" in notices[0]
    assert vis.display_id == 0


@pytest.mark.parametrize("display_id,draws", [(None, 1), (0, 0), (-1, 0), (3, 0)])
def test_unset_display_id_consumes_one_numpy_draw_as_the_original(tmp_path, display_id, draws):
    # The original's Visualizer draws np.random.randint(100000) when --display_id is unset,
    # which shifts every later numpy draw (flips, patch locations) of a seeded run.
    np.random.seed(7)
    expected = [np.random.randint(100000) for _ in range(draws)] + [np.random.random()]
    np.random.seed(7)
    Visualizer(make_opt(tmp_path, display_id=display_id))
    assert np.random.random() == expected[-1]


def test_server_that_never_answers_does_not_hang_training(tmp_path, capsys, monkeypatch):
    pytest.importorskip("visdom", reason="the visdom package is not installed")
    import util.visualizer as visualizer_module
    monkeypatch.setattr(visualizer_module, "REQUEST_TIMEOUT_S", (0.5, 0.5))
    with socket.socket() as silent:  # the kernel accepts connections; nobody ever replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        vis = Visualizer(make_opt(tmp_path, display_id=3, display_port=silent.getsockname()[1]))
        exercise(vis)
        assert time.monotonic() - start < 3.0
    warnings = other_lines(capsys)
    assert len(warnings) == 1 and "did not answer" in warnings[0] and vis.vis is None


def test_tensorboard_base_url_redirects_to_port_2004(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("tensorboard_base_url", "/proxy/abc/")
    Visualizer(make_opt(tmp_path, display_id=1, display_server="http://127.0.0.1"))
    out = capsys.readouterr().out
    assert "http://127.0.0.1:2004/proxy/abc/visdom" in out


@pytest.fixture
def visdom_server(tmp_path):
    """A real visdom server on 127.0.0.1:<free port>, killed afterwards whatever happens."""
    pytest.importorskip("visdom", reason="the visdom package is not installed")
    port = free_port()
    env_path = tmp_path / "visdom_env"
    env_path.mkdir()
    # run_server.main, unlike `python -m visdom.server`, does not download JS files first.
    cmd = [sys.executable, "-c", "from visdom.server.run_server import main; main()",
           "-port", str(port), "--hostname", "127.0.0.1", "-env_path", str(env_path),
           "-bind_local", "-logging_level", "WARNING"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"visdom server exited: {proc.stderr.read().decode()[-500:]}")
                if time.monotonic() > deadline:
                    pytest.fail("visdom server did not accept connections within 30 s")
                time.sleep(0.1)
        yield SimpleNamespace(port=port, proc=proc)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stderr.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # visdom's own Logger.warn call
def test_plots_and_images_reach_a_real_visdom_server(tmp_path, capsys, visdom_server):
    import visdom

    np.random.seed(123)
    expected_id = np.random.randint(100000) * 10  # the original's draw
    np.random.seed(123)
    vis = Visualizer(make_opt(tmp_path, display_id=None, display_port=visdom_server.port,
                              display_ncols=2))
    assert vis.vis is not None and vis.display_id == expected_id
    exercise(vis)

    client = visdom.Visdom(server="http://127.0.0.1", port=visdom_server.port, env="test",
                           raise_exceptions=True, use_incoming_socket=False)
    plot = json.loads(client.get_window_data(str(vis.display_id), env="test"))
    assert plot["title"] == "exp" and plot["type"] == "plot"
    lines = {line["name"]: line for line in plot["content"]["data"]}
    assert lines["G"]["x"] == [1.5, 2.0] and lines["D"]["y"] == [2.0, 1.5]
    images = json.loads(client.get_window_data(str(vis.display_id + 1), env="test"))
    assert images["type"] == "image" and images["title"] == "exp images"
    assert images["content"]["src"].startswith("data:image/png;base64,")
    labels = json.loads(client.get_window_data(str(vis.display_id + 2), env="test"))
    assert "<td>fake_B</td>" in labels["content"] and "<td></td>" in labels["content"]  # filler

    # The server dies mid-run: one warning, visdom off, training goes on quickly.
    visdom_server.proc.kill()
    visdom_server.proc.wait(timeout=10)
    capsys.readouterr()
    start = time.monotonic()
    exercise(vis)
    exercise(vis)
    assert time.monotonic() - start < 5.0
    out = other_lines(capsys)
    assert len(out) == 1 and out[0].startswith("warning: visdom call failed")
    assert vis.vis is None
