"""The segmentation score (metrics/segmentation.py) against hand-computed confusion matrices, the
Cityscapes label table (data/cityscapes_labels.py) against the official table's named facts, and
the file handling around them (pairing, label maps, detected pixels)."""
import importlib.util

import numpy as np
import pytest
from PIL import Image

from data import cityscapes_labels as cs
from metrics import segmentation as seg
from util.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- the metrics

def test_confusion_matrix_and_scores_by_hand():
    # 6 pixels; one is ignored (255).  Rows = ground truth, columns = prediction:
    #   gt 0 -> pred 0, 1      gt 1 -> pred 1, 1      gt 2 -> pred 0
    gt = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    hist = seg.confusion_matrix(gt, pred, 3)
    assert hist.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    s = seg.scores_from_confusion(hist)
    assert s["pixel_acc"] == pytest.approx(3 / 5)
    assert s["class_acc"] == pytest.approx((1 / 2 + 2 / 2 + 0 / 1) / 3)
    # IoU = TP / (gt count + pred count - TP): 1/(2+2-1), 2/(2+3-2), 0/(1+0-0)
    assert s["per_class_iou"] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert s["miou"] == pytest.approx(1 / 3)
    assert s["pixels"] == 5 and s["classes_scored"] == 3


def test_absent_classes_are_left_out_and_false_positives_count():
    # 4 classes.  Class 3 is predicted but absent from the ground truth: IoU 0, counted; no recall.
    # Classes 1 and 2 appear nowhere: no IoU, no recall, left out of both means (fyu/drn's nanmean).
    s = seg.scores_from_confusion(seg.confusion_matrix(np.array([0, 0]), np.array([0, 3]), 4))
    assert s["per_class_iou"] == [0.5, None, None, 0.0]
    assert s["per_class_acc"] == [0.5, None, None, None]
    assert s["miou"] == pytest.approx(0.25) and s["class_acc"] == pytest.approx(0.5)
    assert s["pixel_acc"] == pytest.approx(0.5) and s["classes_scored"] == 2


def test_one_matrix_over_the_set_is_not_the_mean_over_images():
    # Image 1: 4 pixels of class 0, all right.  Image 2: 1 pixel of class 1, called 0.
    h1 = seg.confusion_matrix(np.zeros(4, int), np.zeros(4, int), 2)
    h2 = seg.confusion_matrix(np.ones(1, int), np.zeros(1, int), 2)
    whole = seg.scores_from_confusion(h1 + h2)
    # set: IoU_0 = 4/(4+5-4) = 0.8, IoU_1 = 0/(1+0) = 0 -> 0.4; pixel accuracy 4/5
    assert whole["miou"] == pytest.approx(0.4) and whole["pixel_acc"] == pytest.approx(0.8)
    per_image = np.mean([seg.scores_from_confusion(h)["miou"] for h in (h1, h2)])
    assert per_image == pytest.approx((1.0 + 0.0) / 2)  # image 2: IoU_0 = 0, IoU_1 = 0


def test_ignored_and_out_of_range_pixels():
    assert seg.confusion_matrix(np.array([255, 19, 0]), np.array([5, 7, 0]), 19).sum() == 1
    with pytest.raises(ValueError, match="empty"):
        seg.scores_from_confusion(seg.confusion_matrix(np.array([255]), np.array([0]), 19))
    with pytest.raises(ValueError, match="class indices"):
        seg.confusion_matrix(np.array([0]), np.array([19]), 19)
    assert seg.percent(0.24687) == "24.7"


# ---------------------------------------------------------------------------- the label table

def test_label_table_named_facts():
    """cityscapesscripts' helpers/labels.py: the 19 train ids, everything else ignored."""
    facts = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for label_id in range(256):
        assert cs.train_id_of(label_id) == facts.get(label_id, 255), label_id
    assert cs.train_id_of(-1) == 255  # license plate: trainId -1 in the table, never in a PNG
    assert cs.TRAIN_CLASSES == (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
        "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
        "motorcycle", "bicycle")
    assert cs.NAME_TO_LABEL["road"].color == (128, 64, 128)
    assert cs.NAME_TO_LABEL["car"].color == (0, 0, 142)
    ids = np.array([[7, 26, 0], [33, 255, 6]], np.uint8)
    assert cs.label_ids_to_train_ids(ids).tolist() == [[0, 13, 255], [18, 255, 255]]
    with pytest.raises(ValueError):
        cs.label_ids_to_train_ids(ids.astype(np.int32))


@pytest.mark.skipif(importlib.util.find_spec("cityscapesscripts") is None,
                    reason="cityscapesscripts not installed (scripts/parity/cityscapes_labels.py "
                           "compares with a checkout)")
def test_label_table_equals_cityscapesscripts():
    from cityscapesscripts.helpers import labels as official
    assert [(lb.name, lb.id, lb.trainId, tuple(lb.color)) for lb in official.labels] == \
        [(lb.name, lb.id, lb.train_id, lb.color) for lb in cs.LABELS]


# ---------------------------------------------------------------------------- files

def save(array, path, mode=None):
    Image.fromarray(np.asarray(array, np.uint8), mode).save(path)


class StubSegmenter:
    """Calls a pixel class by its red value: 0..49 -> 0, 50..149 -> 1, 150.. -> 2."""
    name, classes, weights = "stub", ("a", "b", "c"), None

    def __init__(self):
        self.sizes = []

    def predict(self, images):
        import torch
        self.sizes.append(images.shape)
        red = torch.from_numpy(np.asarray(images)[..., 0].astype(np.int64))
        return (red >= 50).long() + (red >= 150).long()


def test_segmentation_score_pairs_resizes_and_scores(tmp_path):
    photos, labels = tmp_path / "fake_B", tmp_path / "testB_trainIds"
    photos.mkdir(), labels.mkdir()
    # Photo 0 (as test.py names it, 0_B.png) at twice the label size: left half class 0, right 2.
    photo = np.zeros((8, 16, 3), np.uint8)
    photo[:, 8:, 0] = 200
    save(photo, photos / "0_B.png")
    # Photo 1 (1_A.jpg style name) at the label size, all class 1.
    save(np.full((4, 8, 3), 100), photos / "1_A.png")
    gt0 = np.zeros((4, 8), np.uint8)
    gt0[:, 4:] = 1  # right half is class 1: predicted 2 there
    gt0[0, 0] = 255
    save(gt0, labels / "0.png", "L")
    save(np.ones((4, 8)), labels / "1.png", "L")
    save(np.ones((4, 8)), labels / "2.png", "L")  # a label map without an image is fine
    stub = StubSegmenter()
    record = seg.segmentation_score(stub, str(photos), str(labels), batch_size=4)
    assert {s[1:3] for s in stub.sizes} == {(4, 8)}  # photos resized to the label maps' size
    # class 0: 15 pixels right; class 1: 16 called 2 (image 0) and 32 right (image 1)
    assert record["confusion_matrix"] == [[15, 0, 0], [0, 32, 16], [0, 0, 0]]
    assert record["n_images"] == 2 and record["eval_size"] == "8x4"
    assert record["pixel_acc"] == pytest.approx(47 / 63)
    assert record["per_class_iou"] == {"a": 1.0, "b": pytest.approx(32 / 48), "c": 0.0}
    assert record["miou"] == pytest.approx((1 + 32 / 48 + 0) / 3)
    assert record["class_acc"] == pytest.approx((1 + 32 / 48) / 2)


def test_file_problems_are_one_line_errors(tmp_path):
    photos, labels = tmp_path / "photos", tmp_path / "labels"
    photos.mkdir(), labels.mkdir()
    save(np.zeros((4, 4, 3)), photos / "3_B.png")
    save(np.zeros((4, 4)), labels / "4.png", "L")
    with pytest.raises(UserError, match=r"1 of the 1 images in .*photos have no label map"):
        seg.pair_with_labels(str(photos), str(labels))
    save(np.zeros((4, 4)), labels / "3_B.png", "L")
    save(np.zeros((4, 4)), labels / "3_A.png", "L")
    with pytest.raises(UserError, match="both stand for image '3'"):
        seg.pair_with_labels(str(photos), str(labels))
    ids = np.full((4, 4), 26, np.uint8)  # a labelIds map (car = id 26), not train ids
    save(ids, tmp_path / "ids.png", "L")
    with pytest.raises(UserError, match="holds value 26.*labelIds"):
        seg.load_label_map(str(tmp_path / "ids.png"), 19)
    save(np.zeros((4, 4, 3)), tmp_path / "colour.png")
    with pytest.raises(UserError, match="is a RGB image"):
        seg.load_label_map(str(tmp_path / "colour.png"), 19)
    with pytest.raises(UserError, match="no such folder"):
        seg.index_folder(str(tmp_path / "missing"), "--seg_labels")


def test_detected_pixels_average_per_image_shares(tmp_path):
    images = tmp_path / "fake_B"
    images.mkdir()
    a = np.zeros((4, 4, 3), np.uint8)
    a[:1, :, 0] = 100  # 1/4 of the pixels class b
    save(a, images / "a.png")
    b = np.zeros((2, 2, 3), np.uint8)  # another size: segmented alone
    b[:, :, 0] = 200  # all class c
    save(b, images / "b.png")
    stub = StubSegmenter()
    classes = seg.resolve_classes(stub, "B,c")
    assert classes == {"B": 1, "c": 2}
    found = seg.detected_pixels(stub, str(images), classes)
    assert found["detected"] == pytest.approx({"B": 0.125, "c": 0.5, "any": 0.625})
    assert found["n_images"] == 2
    with pytest.raises(UserError, match="'zebra' is not a class of stub"):
        seg.resolve_classes(stub, "zebra")
