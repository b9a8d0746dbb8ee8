"""Image decoding for the readers: any image file of a supported format (PNG, JPEG, TIFF, BMP)
and bit depth (8/16-bit, float; grey, grey + alpha, RGB, RGBA) as H x W x 3 uint8 RGB, with the
checks that refuse what would be read wrongly (a cut JPEG, a multi-page TIFF, NaN pixels, ...) and
the mapping of deeper images to 8 bits (depth_range)."""
from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import tifffile

from pycount import config
from pycount.errors import DatasetError

# (.pgm/.ppm: Netpbm, as the HeLa phase-contrast set of Arteta et al.'s cell detection ships)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm")  # any case
FORMATS = "PNG, JPEG, TIFF, BMP and PGM/PPM"     # what IMAGE_SUFFIXES name, for messages
OTHER_IMAGE_SUFFIXES = (".gif", ".webp", ".jp2", ".heic", ".czi", ".nd2", ".lif")  # not read


def to_uint8(data: np.ndarray, depth_range: Sequence[float] = ()) -> np.ndarray:
    """8-bit data as is. Deeper data (16-bit, float): with depth_range (lo, hi), the values lo..hi
    map to 0..255, clipped: one mapping for every image of a dataset (an own folder's, inferred
    from its training images by owndata and kept in its runs), so that an image's brightness
    keeps its meaning. Without it, a robust per-image contrast stretch: the 0.1st and 99.9th
    percentiles over all channels map to 0 and 255 (a few hot pixels or a 12-bit camera in a
    16-bit container do not leave the image dark, but an empty field is stretched to noise)."""
    if data.dtype == np.uint8:
        return data
    data = data.astype(np.float64)
    if len(depth_range) == 2 and depth_range[1] > depth_range[0]:
        lo, hi = float(depth_range[0]), float(depth_range[1])
    else:
        lo, hi = depth_percentiles(data)
        if hi <= lo:  # (nearly) flat image: fall back to the full range, or black
            lo, hi = data.min(), max(data.max(), data.min() + 1)
    return np.rint(np.clip((data - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def outside_range(data: np.ndarray, depth_range: Sequence[float] = (),
                  dtypes: Sequence[str] = (), kind: str = "") -> str:
    """"" when a deeper image's raw values lie mostly within depth_range (or there is none, or the
    image is 8-bit) and its kind of values (`kind`, else its dtype's name) is one of `dtypes` (the
    training images' kinds; () unknown); else what is wrong, in words
    (config.DEPTH_OUTSIDE_WARN)."""
    kind = kind or str(data.dtype)
    if dtypes and kind not in dtypes:
        return _other_depth(kind, tuple(dtypes), tuple(depth_range))
    if data.dtype == np.uint8 or len(depth_range) != 2:
        return ""
    lo, hi = depth_range
    below, above = float(np.mean(data < lo)), float(np.mean(data > hi))
    if below + above <= config.DEPTH_OUTSIDE_WARN:
        return ""
    side = (f"{below:.0%} below {lo:g}" if below >= above else f"{above:.0%} above {hi:g}")
    return (f"{side} of its {data.dtype} values lie outside the range [{lo:g}, {hi:g}] its "
            f"dataset's training images span (depth_range), so it reads as mostly "
            f"{'black' if below >= above else 'white'}: an image of another camera, bit depth or "
            f"exposure; save it like the training images")


# the kinds of values read_in_range gives an image stored with fewer than 8 bits per sample
# (OpenCV widens them to uint8), with those bits
_FEW_BITS = {"bool": 1, "uint2": 2, "uint4": 4}


def _bits(dtype: str) -> str:
    """A numpy dtype's name in a user's words: "16-bit", "32-bit float"."""
    if dtype.startswith("float"):
        return f"{dtype[len('float'):]}-bit float"
    if dtype in _FEW_BITS:
        return f"{_FEW_BITS[dtype]}-bit"
    return {"uint8": "8-bit", "uint16": "16-bit", "int16": "16-bit signed",
            "uint32": "32-bit", "int32": "32-bit signed"}.get(dtype, dtype)


def _other_depth(dtype: str, dtypes: tuple, depth_range: tuple) -> str:
    """An image of another kind of values than the training images': how it reads differently."""
    trained = " and ".join(_bits(d) for d in dtypes)
    if dtype in _FEW_BITS:
        how = (f"it holds only {2 ** _FEW_BITS[dtype]} levels of intensity (a mask or a "
               f"thresholded image?), where the training images held the shades of a micrograph")
    elif dtype == "uint8":
        how = (f"its values are read as they are, where the training images' went through "
               f"{list(depth_range)} (depth_range) to 8 bits" if len(depth_range) == 2 else
               "its values are read as they are, where each training image was stretched to 8 "
               "bits on its own")
    elif len(depth_range) == 2:
        how = f"its values go through the training images' {list(depth_range)} (depth_range)"
    else:
        how = ("it is stretched on its own (its darkest and brightest values become black and "
               "white), which turns a faint or empty field into bright noise")
    return (f"a {_bits(dtype)} image, where the run's training images were {trained}: {how}, so "
            f"it reads otherwise than they did; save it as they were saved")


def depth_percentiles(data: np.ndarray) -> tuple[float, float]:
    """The 0.1st and 99.9th percentiles of an image's values over all channels."""
    lo, hi = np.percentile(data, config.DEPTH_PERCENTILES)
    return float(lo), float(hi)


# a marker inside a JPEG scan's entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart
# marker (0xD0-0xD7) or another 0xFF (fill)
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
# the compressions tifffile decodes without the imagecodecs package (not a dependency): others
# (LZW, JPEG, ZSTD, LERC, ...) go to libtiff (cv2) where it reads them right, or are named
_TIFFFILE_CODECS = ("NONE", "ADOBE_DEFLATE", "DEFLATE", "PACKBITS", "LZMA")


# every complete PNG ends with its IEND chunk (type and CRC); looked for in the file's last
# _PNG_TAIL bytes, as some tools append data after it that decoders ignore
_PNG_END = b"IEND\xaeB`\x82"
_PNG_TAIL = 1 << 16


def _jpeg_complete(data: bytes) -> bool:
    """Does a JPEG file reach its end-of-image marker (FF D9)? libjpeg decodes a file cut short
    with a grey fill and only a warning on stderr. The segments are walked from the start, each
    skipped by its length (so the EOI of an EXIF thumbnail inside APP1 is never mistaken for the
    end), each scan's entropy-coded data up to its next marker; bytes after the EOI (padding, a
    camera's trailer) do not matter."""
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:                  # stray bytes between segments: libjpeg skips them
            i = data.find(b"\xff", i)
            if i < 0:
                return False
            continue
        marker = data[i + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF:                   # fill byte before a marker
            i += 1
        elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:   # markers without a length
            i += 2
        else:
            if i + 3 >= n:
                return False
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
            if marker == 0xDA:               # start of scan: its coded data runs to the next marker
                found = _JPEG_SCAN_END.search(data, i)
                if found is None:
                    return False
                i = found.start()
    return False


def cv2_read(path, flags: int):
    """cv2.imread, or, for a path OpenCV cannot be handed (not valid UTF-8: a name written on
    another system; cv2 4.10 crashed the process on one), the same decoder fed the file's bytes."""
    name = str(path)
    if opencv_can_open(name):
        return cv2.imread(name, flags)
    return cv2.imdecode(np.frombuffer(Path(path).read_bytes(), np.uint8), flags)


def opencv_can_open(name: str) -> bool:
    """Whether OpenCV can be given this path by name: a name that is not valid UTF-8 (Python
    holds it with surrogate escapes) cannot."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(path) -> str:
    """A path as text that can be printed and written to a UTF-8 file: the bytes of a name that
    is not valid UTF-8 as \\xNN escapes (bad\\xffname.png), every other name as it is."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def decode_file(path: Path, what: str = "") -> tuple[np.ndarray, bool]:
    """(pixels, bgr) of one image file as stored (any depth and channels; bgr: cv2's channel
    order, else tifffile's RGB). DatasetError "cannot decode <what><path>: ..." when the file is
    not an image, a broken link, a GIF, a JPEG cut short, a TIFF of several pages (cv2 would read
    the first only) or of two channels the second of which is not alpha, a float image with
    NaN or infinite values, or pixels that are no intensities (complex)."""
    def fail(why, fix="replace or remove it"):
        return DatasetError(f"cannot decode {what}{path}: {why}; {fix}")

    def imread():
        try:
            return cv2_read(path, cv2.IMREAD_UNCHANGED)
        except cv2.error as e:      # OpenCV refuses a header of over 2^30 pixels with an error
            if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
                raise fail("its header gives more pixels than OpenCV reads (2^30, e.g. 32768 x "
                           "32768): an image that large, or a damaged header",
                           "cut it into tiles, or shrink it, or remove it") from None
            raise fail(f"OpenCV cannot read it ({str(e).strip().splitlines()[-1]})") from None
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head[:3] == b"\xff\xd8\xff" and not _jpeg_complete(head + f.read()):
                raise fail("the JPEG file ends before its end-of-image marker (it was cut short, "
                           "e.g. by an interrupted copy or download)")
            if head == b"\x89PNG":         # (libpng would say "Read Error" on stderr, then fail)
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _PNG_TAIL))
                if _PNG_END not in f.read():
                    raise fail("the PNG file ends before its IEND chunk (it was cut short, e.g. "
                               "by an interrupted copy or download)")
    except OSError as e:
        link = dead_link(path)
        if link:
            raise fail(f"it is {link[0]}", link[1]) from None
        raise fail(f"the file cannot be read ({e.strerror or e})") from None
    if head == b"GIF8":                      # GIF87a, GIF89a: no suffix of IMAGE_SUFFIXES
        raise fail(f"GIF is not a supported format ({FORMATS} are)", "convert it to PNG or TIFF")
    tiff = _tiff_head(path) if head in _TIFF_MAGIC else _TiffHead()
    merge = ("merge the channels into one RGB image (Fiji: Image > Color > Merge Channels) or "
             "save the channel to count as a grey image, or remove it")
    if tiff.channels == 2 and not tiff.alpha:          # cv2 would read the first channel only
        raise fail("it has two channels and the second is not marked as alpha (two stains or "
                   "fluorescence channels?), and one grey, RGB or RGBA image is read", merge)
    if tiff.grey and tiff.channels - tiff.alpha > 1:   # cv2 read the first, or took 3 for RGB
        raise fail(f"it has {tiff.channels - tiff.alpha} channels stored as grey values, not as "
                   f"RGB (stains or fluorescence channels?), and one grey, RGB or RGBA image is "
                   f"read", merge)
    # channels stored as separate planes: cv2 (4.10) decodes them into pixels that change from
    # one read to the next (16-bit, float) or are wrong (tiled); and it multiplies the colours of
    # an 8-bit RGBA TIFF by an unassociated alpha (libtiff's RGBA reader): tifffile reads those
    first = tiff.planar or (tiff.unassociated and tiff.channels >= 4 and tiff.bits == 8)
    data, bgr, pages = (None if first else imread()), True, 1
    if data is not None and head in _TIFF_MAGIC:
        try:
            # (tiff.pages is 0 only where tifffile could not parse the file, so OpenCV counts;
            # it cannot be handed a name that is not UTF-8)
            pages = tiff.pages or (cv2.imcount(str(path)) if opencv_can_open(str(path)) else 1)
        except cv2.error:                    # it decoded, so it has one page at least
            pages = 1
    deep = data is not None and tiff.channels == 2 and tiff.bits > 8  # cv2 cuts grey + alpha to 8 bits
    lacking = ""
    if (data is None or deep) and (head in _TIFF_MAGIC or path.suffix.lower() in (".tif", ".tiff")):
        try:
            with tifffile.TiffFile(path) as tif:   # tifffile keeps the file's RGB order
                series = tif.series[0]
                data, bgr, pages = series.asarray(), False, tiff.pages or len(series.pages)
                if "S" in series.axes:             # planar channels: last, as cv2 gives them
                    data = np.moveaxis(data, series.axes.index("S"), -1)
        except Exception as e:  # tifffile raises many types on broken files: "cannot decode"
            lacking = tiff.compression if "imagecodecs" in str(e) or tiff.compression not in \
                _TIFFFILE_CODECS else ""
            # (deep: cv2 read it cut to 8 bits, a 12-bit camera's 0-4095 to 0-15: named where
            # the codec is what tifffile lacks; kept where the file defeats tifffile otherwise)
            data = data if deep and not lacking else None
        if data is not None and data.size == 0:    # a TIFF cut short: its pages are lost
            data = None
        if data is None and lacking and first and tiff.bits == 8 and not (tiff.tiled and
                                                                         tiff.planar):
            # a compression tifffile has no codec for here (LZW, JPEG, ZSTD): libtiff's (cv2),
            # right for 8-bit planar strips and RGBA, save for the alpha it multiplies the
            # colours by
            data, bgr = imread(), True
            fix = ("save it without the alpha channel (Fiji: Image > Type > {}) or uncompressed, "
                   "or remove it")
            if data is not None and tiff.unassociated and data.ndim == 3 and \
                    data.shape[2] == 4 and (data[..., 3] < 255).any():
                raise fail(f"its alpha channel is not opaque everywhere, and the only reader "
                           f"here of its {lacking} compression darkens the colours by it",
                           fix.format("RGB Color"))
            if data is not None and tiff.unassociated and data.ndim == 2:
                # grey + alpha in planes: the grey comes back alone, already multiplied by an
                # alpha that cannot be looked at
                raise fail(f"it holds grey and an alpha channel in separate planes, and the only "
                           f"reader here of its {lacking} compression darkens the grey by the "
                           f"alpha", fix.format("8-bit"))
    if data is None and lacking:
        kind = ("channels in separate planes" if tiff.planar else
                {1: "grey", 2: "grey + alpha", 3: "RGB"}.get(tiff.channels, "RGBA"))
        raise fail(f"its {lacking} compression is not read here for a TIFF laid out as this one "
                   f"({kind}{', in tiles' if tiff.tiled else ''}, {tiff.bits}-bit)",
                   "save it uncompressed or with ZIP (Deflate) compression, or remove it")
    if data is None:
        raise fail("the file is corrupt or not an image")
    if pages > 1:
        raise fail(f"it is a TIFF of {pages} pages (a stack, time series or channels), and one "
                   "image per file is read", "save each page as an image of its own (Fiji: Image "
                   "> Stacks > Stack to Images) or the channels as one RGB image, or remove it")
    if data.dtype.kind not in "biuf":          # complex (an FFT result), object, strings
        raise fail(f"its pixels are {data.dtype} values, not intensities (grey or RGB, integer or "
                   f"real)", "save the image as intensities (Fiji: Image > Type > 32-bit, or "
                   "the magnitude of a complex image), or remove it")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int(data.size - np.isfinite(data).sum())
        raise fail(f"{bad} of its {data.size} pixel values are NaN or infinite", "replace them "
                   "(Fiji: Process > Math > Remove NaNs) and save it again, or remove it")
    return data, bgr


def dead_link(path: Path) -> tuple[str, str] | None:
    """(what it is, the fix) of a symbolic link that leads to no file: to one that does not exist,
    or back to itself (a loop); None for anything else."""
    if not (path.is_symlink() and not path.exists()):
        return None
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return (f"a link that leads back to itself (a loop, through {os.readlink(path)})",
                    "point it at the file, or remove the link")
    return (f"a broken link (to {os.readlink(path)}, which does not exist)",
            "restore the file it points to, or remove the link")


@dataclass(frozen=True)
class _TiffHead:
    """What a TIFF's headers say of its first page, as decode_file needs it (all 0 / False where
    tifffile cannot parse them)."""
    channels: int = 0        # samples per pixel
    bits: int = 0            # per sample
    alpha: bool = False      # the first extra sample is alpha (ExtraSamples 1 or 2)
    unassociated: bool = False   # ... unassociated alpha (2): colours stored as they are
    planar: bool = False     # the channels stored as separate planes
    tiled: bool = False
    grey: bool = False       # photometric min-is-black or -white: its samples are not RGB
    compression: str = ""    # e.g. "LZW"
    pages: int = 0           # full-resolution pages (a thumbnail or preview page not counted)


def _tiff_head(path: Path) -> _TiffHead:
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            # (a reduced page first: the reader would take it for the image; every page counts)
            pages = len(tif.pages) if getattr(page, "is_reduced", False) else \
                sum(1 for p in tif.pages if not getattr(p, "is_reduced", False))
            extra = tuple(page.extrasamples)       # 1: associated alpha, 2: unassociated, 0: ?
            return _TiffHead(
                channels=page.samplesperpixel, bits=page.bitspersample,
                alpha=extra[:1] in ((1,), (2,)), unassociated=extra[:1] == (2,),
                planar=page.samplesperpixel > 1 and int(page.planarconfig) == 2,
                tiled=bool(page.is_tiled), grey=int(page.photometric) in (0, 1),
                compression=getattr(page.compression, "name", str(page.compression)),
                pages=max(pages, 1))
    except Exception:  # as in decode_file: a broken file
        return _TiffHead()


def decoded_pixels(path: Path) -> np.ndarray:
    """An image file's pixels at their own depth: H x W grey or H x W x 3 RGB, alpha dropped
    (before any depth conversion, so an opaque alpha cannot darken the rest). TIFFs cv2 cannot
    decode go to tifffile; what decode_file refuses (a cut JPEG, a multi-page TIFF, two channels that
    are not grey + alpha, NaN pixels) raises DatasetError."""
    data, bgr = decode_file(Path(path))
    if data.ndim == 3 and data.shape[2] in (1, 2):     # grey, grey + alpha (decode_file checked it)
        data = data[..., 0]
    if not (data.ndim == 2 or (data.ndim == 3 and data.shape[2] in (3, 4))):
        raise DatasetError(f"{path} has shape {data.shape}; expected one grey, RGB or RGBA image "
                           "(save multi-page or multi-channel stacks as one image per file)")
    if data.ndim == 3:
        data = data[..., 2::-1] if bgr else data[..., :3]
    return data


def to_rgb8(data: np.ndarray, depth_range: Sequence[float] = ()) -> np.ndarray:
    """decoded_pixels's pixels as H x W x 3 uint8 RGB (grey replicated; depth as to_uint8)."""
    data = to_uint8(data, depth_range)
    if data.ndim == 2:
        return np.repeat(data[..., None], 3, axis=2)
    return np.ascontiguousarray(data)


def read_any_image(path: Path, depth_range: Sequence[float] = ()) -> np.ndarray:
    """Decode an 8/16-bit (or float) grey, grey + alpha, RGB or RGBA image into H x W x 3 uint8
    RGB (decoded_pixels, then to_rgb8; depth_range: see to_uint8)."""
    return to_rgb8(decoded_pixels(path), depth_range)


def stored_bits(path: Path) -> int:
    """The bits per sample of a grey PNG or TIFF that stores fewer than 8 (1, 2 or 4: a black-and-
    white mask, a thresholded or posterised image), which OpenCV widens to 8-bit values so that
    its dtype no longer tells; 0 for anything else (a palette PNG's bits index its colours)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return 0
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        bits, colour = head[24], head[25]
        return bits if colour == 0 and bits < 8 else 0        # (grey + alpha: 8 bits at least)
    if head[:4] in _TIFF_MAGIC:
        tiff = _tiff_head(path)
        return tiff.bits if tiff.grey and 0 < tiff.bits < 8 else 0
    return 0


def read_in_range(path: Path, depth_range: Sequence[float] = (),
                  dtypes: Sequence[str] = ()) -> tuple[np.ndarray, str]:
    """(read_any_image's RGB, outside_range's words on its raw values): an image read through
    its dataset's depth_range, and whether that range (and `dtypes`, the kinds of values its
    training images had; an image of fewer than 8 bits is of its own kind) suits it."""
    raw = decoded_pixels(path)
    bits = 1 if raw.dtype == bool else stored_bits(path)
    kind = "bool" if bits == 1 else f"uint{bits}" if bits else ""
    return to_rgb8(raw, depth_range), outside_range(raw, depth_range, dtypes, kind)
