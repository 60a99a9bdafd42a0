"""The Verifier contract on real LFW faces with the embedded default model."""
import numpy as np
import pytest
from PIL import Image

from tests.conftest import lfw_image, needs_lfw
from trainer.errors import ImageDecodeError, NoFaceError
from trainer.faces import DETECT_BATCH
from trainer.model_io import load_model_config, save_model_dir
from trainer.verify import AnchorSet, Verifier

pytestmark = needs_lfw


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier.default()


def test_default_model_is_the_pretrained_backbone_with_a_tuned_head(verifier):
    assert verifier.config.backbone == "dlib_resnet"
    assert verifier.config.source == "embedded default"
    assert 0.0 < verifier.threshold < 1.0
    assert Verifier.default() is verifier  # loaded once per process


def test_genuine_pair_matches_and_impostor_does_not(verifier):
    genuine = verifier.verify(lfw_image("Colin_Powell", 1), lfw_image("Colin_Powell", 2))
    impostor = verifier.verify(lfw_image("Colin_Powell", 1), lfw_image("Tony_Blair", 1))
    assert genuine["is_match"] is True and impostor["is_match"] is False
    assert genuine["score"] > verifier.threshold > impostor["score"]
    for result in (genuine, impostor):
        assert 0.0 <= result["score"] <= 1.0
        assert result["threshold"] == verifier.threshold
        assert len(result["faces"]) == 2 and all(len(f["box"]) == 4 for f in result["faces"])
        assert result["timing_ms"]["total"] > 0
    assert genuine["distance"] < impostor["distance"]


def test_threshold_argument_overrides_the_tuned_threshold(verifier):
    pair = (lfw_image("Colin_Powell", 1), lfw_image("Tony_Blair", 1))
    assert verifier.verify(*pair, threshold=0.0)["is_match"] is True
    loose = verifier.verify(*pair, threshold=0.0)
    assert loose["threshold"] == 0.0 and loose["score"] == pytest.approx(verifier.verify(*pair)["score"], abs=1e-6)


def test_chips_and_array_inputs(verifier):
    pixels = np.asarray(Image.open(lfw_image("George_W_Bush", 1)))
    result = verifier.verify(pixels, lfw_image("George_W_Bush", 2), return_chips=True)
    assert result["is_match"] is True
    assert [c.shape for c in result["chips"]] == [(150, 150, 3), (150, 150, 3)]


def test_batch_embedding_matches_single_embeddings(verifier):
    # More images than one detection batch (DETECT_BATCH), one of another size: order and results are kept.
    small = np.asarray(Image.open(lfw_image("Tony_Blair", 4)).resize((200, 200)))
    images = [lfw_image("Tony_Blair", n) for n in (1, 2, 3)] + [small] + [lfw_image("Colin_Powell", n) for n in (1, 2)]
    assert len(images) > DETECT_BATCH
    batch, found = verifier.embed(images)
    assert batch.shape == (6, 128) and len(found) == 6
    singles = np.concatenate([verifier.embed_chips(verifier.detect(image).chip[None]) for image in images])
    # Batched convolutions move landmarks by ~1e-4 px, which can flip a chip pixel by one level: not more.
    np.testing.assert_allclose(batch, singles, atol=1e-3)


def test_anchor_check_enrolls_once_and_votes(verifier, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    anchors = verifier.enroll([lfw_image("Colin_Powell", n) for n in (2, 3, 4)] + [blank])
    assert isinstance(anchors, AnchorSet) and len(anchors) == 3
    assert anchors.embeddings.shape == (3, 128)
    assert len(anchors.skipped) == 1 and "blank.png" in anchors.skipped[0]
    same = verifier.verify_against_anchors(lfw_image("Colin_Powell", 1), anchors)
    other = verifier.verify_against_anchors(lfw_image("Tony_Blair", 1), anchors)
    assert same["is_match"] is True and same["verification"] == 1.0 and same["detections"] == 3
    assert other["is_match"] is False and other["detections"] == 0
    assert [s["anchor"] for s in same["scores"]] == anchors.names
    # The original design's rule: the share of anchors above the detection threshold must pass.
    strict = verifier.verify_against_anchors(lfw_image("Colin_Powell", 1), anchors, detection_threshold=1.0)
    assert strict["detections"] == 0 and strict["is_match"] is False


def test_no_face_and_unreadable_inputs_have_named_errors(verifier, tmp_path):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (300, 300), (200, 180, 160)).save(blank)
    with pytest.raises(NoFaceError, match="wall.png"):
        verifier.verify(blank, lfw_image("Colin_Powell", 1))
    with pytest.raises(ImageDecodeError):
        verifier.verify(b"not an image", lfw_image("Colin_Powell", 1))


def test_several_faces_use_the_largest_and_say_so(verifier):
    big = Image.open(lfw_image("Colin_Powell", 2))
    small = Image.open(lfw_image("Tony_Blair", 1)).resize((160, 160))
    canvas = Image.new("RGB", (450, 260), (255, 255, 255))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (280, 40))
    result = verifier.verify(np.asarray(canvas), lfw_image("Colin_Powell", 1))
    assert result["faces"][0]["faces_found"] == 2
    assert result["is_match"] is True
    assert "2 faces found" in result["warnings"][0]


def test_model_folder_round_trip_gives_identical_scores(verifier, tmp_path):
    save_model_dir(verifier.model, verifier.config, tmp_path / "model")
    assert load_model_config(tmp_path / "model").threshold == verifier.threshold
    loaded = Verifier.from_dir(tmp_path / "model")
    pair = (lfw_image("Colin_Powell", 1), lfw_image("Colin_Powell", 2))
    assert loaded.verify(*pair)["score"] == pytest.approx(verifier.verify(*pair)["score"], abs=1e-6)


def test_low_confidence_face_is_verified_with_a_warning(verifier):
    # ONet scores this clear face about 0.83, below the 0.9 bar: it is used, and the result says so.
    result = verifier.verify(lfw_image("Princess_Elisabeth", 1), lfw_image("Colin_Powell", 1))
    assert result["faces"][0]["low_confidence"] is True and result["faces"][1]["low_confidence"] is False
    assert result["faces"][0]["confidence"] < 0.9
    assert any("face found with low confidence" in w for w in result["warnings"])
    assert result["is_match"] is False


def test_default_head_ranks_as_the_backbone_distance_and_personalisation_starts_from_it(verifier):
    from trainer.default_model import load_default_model
    from trainer.networks import head_kind

    assert head_kind(verifier.model) == "tied_squared"
    kernel, bias = verifier.model.get_layer("head").get_weights()
    assert np.unique(kernel).size == 1 and kernel[0, 0] < 0  # one weight: a logistic function of the distance
    result = verifier.verify(lfw_image("Colin_Powell", 1), lfw_image("Colin_Powell", 2))
    expected = 1 / (1 + np.exp(-(kernel[0, 0] * result["distance"] ** 2 + bias[0])))
    assert result["score"] == pytest.approx(expected, abs=1e-5)
    personal = Verifier(*load_default_model(head="uniform"))  # what `train` fine-tunes: free weights, same start
    assert head_kind(personal.model) == "uniform"
    rng = np.random.default_rng(0)
    a, b = rng.normal(scale=0.1, size=(2, 5, 128)).astype(np.float32)
    np.testing.assert_allclose(personal.score(a, b), verifier.score(a, b), atol=1e-6)
