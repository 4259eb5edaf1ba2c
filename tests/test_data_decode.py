"""C++ decoding of image folders: what the source hands on, the decode op the loader adds, and that the decoded
images match a full PIL decode of the same files."""

from __future__ import annotations

import io
import os

import mindspore.dataset as ds
import numpy as np
import pytest
from helpers import iterate, jpeg_bytes, random_rgb, shared_path
from mindspore.dataset import vision
from PIL import Image

from mindcv_mobilenet.data import create_dataset, create_loader, create_transforms
from mindcv_mobilenet.data.decode import cpp_decodable_jpeg, decode_image, load_encoded, load_rgb
from mindcv_mobilenet.data.transforms import with_decode


def test_rgb_jpeg_passes_through_and_the_rest_is_converted(messy_tree):
    folder = os.path.join(messy_tree, "train", "a_messy")
    rgb = os.path.join(folder, "rgb.jpg")
    assert load_encoded(rgb).tobytes() == open(rgb, "rb").read()  # decoded in C++, crop only
    for name in ("cmyk.jpg", "rgba.png", "palette.png", "deep16.png", "gray.png"):
        encoded = load_encoded(os.path.join(folder, name))
        assert encoded.tobytes()[:2] == b"BM", name  # converted by PIL (alpha on white...) and handed on as BMP
        np.testing.assert_array_equal(vision.Decode()(encoded), load_rgb(os.path.join(folder, name)), err_msg=name)
    for name in ("truncated.jpg", "empty.jpg"):
        with pytest.raises(Exception):  # noqa: B017 - any decoder error; the source turns it into a skipped row
            load_encoded(os.path.join(folder, name))


def test_with_decode_puts_the_opencv_decoder_in_front():
    train = with_decode(create_transforms("imagenet", 64, is_training=True, scale=(0.3, 0.9)))
    assert train[0] is decode_image and type(train[1]) is vision.RandomResizedCrop and train[1].scale == (0.3, 0.9)
    evaluation = with_decode(create_transforms("imagenet", 64))
    assert evaluation[0] is decode_image and type(evaluation[1]) is vision.Resize
    assert with_decode(evaluation) == evaluation  # already decoding: unchanged
    stock = [vision.Decode(), vision.Resize(8)]
    assert with_decode(stock) == stock


def test_opencv_decode_gives_mindspores_pixels(messy_tree):
    """decode_image replaces MindSpore's Decode because it is faster on the same bytes, not because it differs."""
    folder = os.path.join(messy_tree, "train", "a_messy")
    files = [os.path.join(folder, n) for n in ("rgb.jpg", "cmyk.jpg", "rgba.png", "gray.png")]
    files += [os.path.join(messy_tree, "train", "b_clean", "img_0.jpg")]
    gray = io.BytesIO()
    random_rgb(9).convert("L").save(gray, "JPEG", quality=90)  # a grayscale JPEG passes through as it is
    encoded = [load_encoded(f) for f in files] + [np.frombuffer(gray.getvalue(), np.uint8)]
    for data in encoded:
        image = decode_image(data)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        np.testing.assert_array_equal(image, vision.Decode()(data))


def test_opencv_decode_gives_mindspores_pixels_on_real_photos():
    """All 1,000 shared ImageNet samples: camera JPEGs with EXIF, 23 grayscale, progressive ones."""
    real = shared_path("data", "imagenet-samples", "val")
    for path in sorted(os.path.join(d, f) for d, _, fs in os.walk(real) for f in fs):
        data = load_encoded(path)
        np.testing.assert_array_equal(decode_image(data), vision.Decode()(data), err_msg=path)


def test_cpp_decoded_eval_batches_match_a_pil_decode(messy_tree):
    """The loader's C++ path gives the images PIL gives (JPEG decoders may differ by a level or so)."""
    dataset = create_dataset("folder", messy_tree, split="val", shuffle=False)
    assert dataset.info.encoded
    transform = create_transforms("folder", 32)
    images = np.concatenate([b["image"] for b in iterate(create_loader(dataset, 4, transform=transform))])

    good = []
    for path in dataset.info.stats.files:
        try:
            good.append(load_rgb(path))
        except Exception:  # noqa: BLE001 - the two bad files, skipped by the loader too
            continue
    reference = ds.GeneratorDataset(((img,) for img in good), ["image"], shuffle=False).map(transform, "image")
    expected = np.stack([r["image"] for r in reference.create_dict_iterator(num_epochs=1, output_numpy=True)])
    assert images.shape == expected.shape == (8, 3, 32, 32)
    # 0.05 after Normalize is about 3 grey levels of 255
    np.testing.assert_allclose(images, expected, atol=0.05)


def test_a_file_pil_reads_without_an_end_marker_goes_through_pil(tmp_path):
    """JPEGs whose end-of-image marker is missing or far before the end are decoded by PIL, not dropped."""
    buf = io.BytesIO()
    random_rgb(3).save(buf, "JPEG", quality=90)
    path = tmp_path / "trailing.jpg"
    path.write_bytes(buf.getvalue() + b"\0" * 5000)  # e.g. metadata appended after the image
    encoded = load_encoded(str(path))
    assert encoded.tobytes()[:2] == b"BM"
    np.testing.assert_array_equal(vision.Decode()(encoded), load_rgb(str(path)))


def _pil_reads_as_rgb_or_gray(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format == "JPEG" and img.mode in ("RGB", "L")
    except Exception:  # noqa: BLE001 - any header error
        return False


def test_header_check_takes_what_the_cpp_decoder_reads():
    rgb = random_rgb(5)
    for data in (jpeg_bytes(rgb), jpeg_bytes(rgb, progressive=True), jpeg_bytes(rgb.convert("L")),
                 jpeg_bytes(rgb, exif=b"Exif\0\0")):
        assert cpp_decodable_jpeg(data)
    assert not cpp_decodable_jpeg(jpeg_bytes(rgb.convert("CMYK")))  # 4 components: PIL converts it
    good = jpeg_bytes(rgb)
    assert not cpp_decodable_jpeg(good[:-2000])  # truncated: no end marker
    dqt = good.index(b"\xff\xdb")
    assert not cpp_decodable_jpeg(good[:dqt + 4] + bytes([0x07]) + good[dqt + 5:])  # quantisation table id 7
    assert not cpp_decodable_jpeg(good[:dqt + 1] + b"\x02" + good[dqt + 2:])  # not a header marker
    assert not cpp_decodable_jpeg(good[:dqt + 2] + b"\xff\xf0" + good[dqt + 4:])  # segment longer than the file


def test_header_check_is_at_least_as_strict_as_pil():
    """Over random one-byte corruptions of the headers, no file passes that PIL's header parser rejects (those would
    reach the C++ decoder, which stops the pipeline or crashes on some); files it rejects are decoded by PIL."""
    good = jpeg_bytes(random_rgb(6))
    scan = good.index(b"\xff\xda")
    rng = np.random.default_rng(0)
    passed = 0
    for _ in range(400):
        data = bytearray(good)
        data[int(rng.integers(2, scan + 12))] = int(rng.integers(0, 256))
        if cpp_decodable_jpeg(bytes(data)):
            passed += 1
            assert _pil_reads_as_rgb_or_gray(bytes(data))
    assert passed > 100  # most corruptions hit table values, which both accept


def test_the_shared_samples_all_go_to_the_cpp_decoder():
    files = sorted(shared_path("data", "imagenet-samples", "val").glob("*/*"))[:200]
    assert files and all(cpp_decodable_jpeg(p.read_bytes()) for p in files)
