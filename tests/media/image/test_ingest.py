"""MediaIngestor: per-card limits, detail, the processor's input size, several images at once."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from mmserve.cards import Limits
from mmserve.errors import InvalidRequestError, MediaFetchError, PayloadTooLargeError
from mmserve.media.image.decode import ImageInputSize
from mmserve.media.image.ingest import ImageRef, MediaIngestor
from mmserve.media.net.fetch import SafeFetcher
from mmserve.settings import FetchSettings, LimitSettings, Settings
from tests.helpers import hostile as h
from tests.helpers.images import image_bytes


def card(**limits: object) -> Limits:
    """A card's limits: what the media layer reads of a card."""
    return Limits.model_validate(limits)


def uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture
async def ingestor() -> AsyncIterator[MediaIngestor]:
    media = MediaIngestor(Settings(limits=LimitSettings(min_image_side=4)))
    yield media
    await media.aclose()


def test_card_limits_tighten_the_servers() -> None:
    media = MediaIngestor(Settings())
    lim = media.limits_for(
        card(max_image_side=1000, max_image_pixels=500_000, min_image_side=20, image_formats=["png"])
    )
    assert (lim.max_side, lim.max_pixels, lim.min_side, lim.formats) == (1000, 500_000, 20, ("png",))
    loose = media.limits_for(card(max_image_side=9000, min_image_side=2))
    assert (loose.max_side, loose.min_side, loose.formats) == (4000, 8, ("png", "jpeg", "webp"))


@pytest.mark.parametrize(
    ("detail", "input_size", "expected"),
    [
        ("low", None, (512, 256)),
        ("high", None, (2000, 1000)),  # no processor size known: only the limits apply
        ("auto", None, (2000, 1000)),
        ("high", ImageInputSize(shortest_edge=56), (112, 56)),
        ("auto", ImageInputSize(shortest_edge=56), (112, 56)),
        ("low", ImageInputSize(shortest_edge=336), (512, 256)),  # low caps below the processor's size
        ("low", ImageInputSize(shortest_edge=56), (112, 56)),
    ],
)
async def test_detail(
    ingestor: MediaIngestor, detail: str, input_size: ImageInputSize | None, expected: tuple[int, int]
) -> None:
    ref = ImageRef(uri(image_bytes((2000, 1000), fmt="JPEG"), "image/jpeg"), detail, "messages[0].content[0].image_url")
    img = await ingestor.load_image(ref, card(), model="m", input_size=input_size)
    assert img.size == expected and img.mode == "RGB"


async def test_decode_entry_point_for_uploads(ingestor: MediaIngestor) -> None:
    """The call shape the image-edit endpoint uses."""
    limits = ingestor.limits_for(card())
    img = await ingestor.decode(image_bytes((800, 400), fmt="WEBP"), limits, param="image", target_side=256)
    assert img.size == (256, 128)
    with pytest.raises(InvalidRequestError) as e:
        await ingestor.decode(b"", limits, param="image[]", target_side=None)
    assert e.value.param == "image[]"


async def test_masks_keep_their_alpha(ingestor: MediaIngestor) -> None:
    limits = ingestor.limits_for(card())
    mask = Image.new("RGBA", (400, 200), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 200, 200))  # left half transparent: "edit here"
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    out = await ingestor.decode(buf.getvalue(), limits, param="mask", target_side=100, keep_alpha=True)
    assert out.mode == "RGBA" and out.size == (100, 50)
    assert out.getpixel((10, 25))[3] == 0 and out.getpixel((90, 25))[3] == 255  # type: ignore[index]
    opaque = await ingestor.decode(image_bytes(fmt="JPEG"), limits, param="image", target_side=None, keep_alpha=True)
    assert opaque.mode == "RGB"  # nothing transparent: nothing to keep
    flat = await ingestor.decode(buf.getvalue(), limits, param="image", target_side=None)
    assert flat.mode == "RGB" and flat.getpixel((10, 25)) == (255, 255, 255)


async def test_links_forbidden_by_the_card_fetch_nothing() -> None:
    calls: list[httpx.Request] = []
    fetcher = SafeFetcher(
        Settings().fetch, transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200))
    )
    media = MediaIngestor(Settings(), fetcher)
    with pytest.raises(MediaFetchError) as e:
        await media.load_image(ImageRef("http://93.184.216.34/a.png"), card(allow_image_urls=False), model="m")
    assert e.value.code == "image_urls_disabled" and calls == []
    await media.aclose()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:text/plain;base64,aGk=", "invalid_image_url"),
        ("ftp://x/y.png", "invalid_image_url"),
        ("  ", "invalid_image_url"),
    ],
)
async def test_not_image_urls(ingestor: MediaIngestor, url: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        await ingestor.load_image(ImageRef(url, param="p"), card(), model="m")
    assert e.value.code == code and e.value.param == "p"


async def test_the_first_failure_cancels_the_other_images() -> None:
    cancelled = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return httpx.Response(200)

    media = MediaIngestor(Settings(), SafeFetcher(Settings().fetch, transport=httpx.MockTransport(slow)))
    refs = [ImageRef("http://93.184.216.34/slow.png", param="a"), ImageRef("data:image/png;base64,!!!!", param="b")]
    try:
        with pytest.raises(InvalidRequestError) as e:
            await asyncio.wait_for(media.load_images(refs, card(), model="m"), 10)
        assert e.value.param == "b"
        assert cancelled.is_set()  # the slow fetch did not go on in the background
    finally:
        await media.aclose()


# ------------------------------------------------------------------ request-wide totals


def _refs(urls: list[str]) -> list[ImageRef]:
    return [ImageRef(u, param=f"messages[0].content[{i}].image_url") for i, u in enumerate(urls)]


async def test_the_pixels_of_all_images_of_a_request_are_capped() -> None:
    media = MediaIngestor(Settings(limits=LimitSettings(max_request_image_pixels=25_000, decode_isolation="thread")))
    try:
        three = _refs([uri(image_bytes((100, 100)))] * 3)  # 10,000 pixels each
        with pytest.raises(PayloadTooLargeError) as e:
            await media.load_images(three, card(), model="m")
        assert e.value.code == "request_images_too_large" and "25000" in e.value.message
        assert e.value.param is not None and e.value.param.startswith("messages[0].content[")
        assert len(await media.load_images(three[:2], card(), model="m")) == 2
        # the card tightens the server's total
        with pytest.raises(PayloadTooLargeError):
            await media.load_images(three[:2], card(max_request_image_pixels=15_000), model="m")
    finally:
        await media.aclose()


async def test_one_image_over_what_is_left_is_refused_before_decoding() -> None:
    media = MediaIngestor(Settings(limits=LimitSettings(max_request_image_pixels=50_000)))
    try:
        with pytest.raises(PayloadTooLargeError) as e:
            await media.load_images(_refs([uri(image_bytes((300, 300)))]), card(), model="m")
        assert e.value.code == "request_images_too_large"
    finally:
        await media.aclose()


async def test_the_bytes_of_all_data_uri_images_are_capped() -> None:
    png = image_bytes((64, 64), fmt="BMP")  # ~12 KB, uncompressed
    media = MediaIngestor(Settings(limits=LimitSettings(max_request_image_bytes=30_000)))
    try:
        with pytest.raises(PayloadTooLargeError) as e:
            await media.load_images(_refs([uri(png, "image/bmp")] * 3), card(image_formats=["bmp"]), model="m")
        assert e.value.code == "request_images_too_large" and "30000 bytes" in e.value.message
        assert len(await media.load_images(_refs([uri(png, "image/bmp")] * 2), card(image_formats=["bmp"]), model="m"))
    finally:
        await media.aclose()


async def test_fetching_stops_once_the_request_total_is_spent() -> None:
    """Three links to a streamed 60 KB image, 100 KB for the whole request: the fetches are cut
    at the total, not each at the per-image cap."""
    from tests.helpers.httpserver import TargetServer

    with TargetServer() as target:
        big = image_bytes((64, 64), fmt="BMP")
        target.routes["/a.bmp"] = (200, {"X-Test-Stream": "5"}, big)  # ~60 KB, no Content-Length
        settings = Settings(
            fetch=FetchSettings(allow_networks=["127.0.0.1/32"]),
            limits=LimitSettings(max_request_image_bytes=100_000),
        )
        media = MediaIngestor(settings)
        try:
            with pytest.raises(PayloadTooLargeError) as e:
                await media.load_images(_refs([target.url("/a.bmp")] * 3), card(image_formats=["bmp"]), model="m")
            assert e.value.code == "request_images_too_large" and "100000 bytes" in e.value.message
        finally:
            await media.aclose()


async def test_a_declared_length_over_what_is_left_is_refused_unread() -> None:
    from tests.helpers.httpserver import TargetServer

    with TargetServer() as target:
        target.routes["/a.png"] = (200, {}, image_bytes((64, 64), fmt="BMP"))  # ~12 KB with Content-Length
        settings = Settings(
            fetch=FetchSettings(allow_networks=["127.0.0.1/32"]),
            limits=LimitSettings(max_request_image_bytes=5_000),
        )
        media = MediaIngestor(settings)
        try:
            with pytest.raises(PayloadTooLargeError) as e:
                await media.load_images(_refs([target.url("/a.png")]), card(image_formats=["bmp"]), model="m")
            assert e.value.code == "request_images_too_large"
        finally:
            await media.aclose()


# ------------------------------------------------------------------ several images of one request


async def test_the_images_of_a_request_decode_side_by_side_with_the_pixels_of_one_after_another() -> None:
    """load_images hands every image to a decode worker at once (two workers here, two slots):
    the pixels are those of the same images loaded one by one, and of an in-process decode."""
    from mmserve.media.decodejob import DecodeJob, run_job
    from mmserve.media.decoder import ProcessDecoder

    sizes = [(640, 480), (480, 640), (800, 600), (640, 480)]
    blobs = [h.encode(h.noisy(s), fmt) for s, fmt in zip(sizes, ("PNG", "JPEG", "WEBP", "PNG"), strict=True)]
    refs = _refs([uri(b, "application/octet-stream") for b in blobs])
    target = ImageInputSize(shortest_edge=112)
    decoder = ProcessDecoder(2, 30, 2048)
    media = MediaIngestor(Settings(), decoder=decoder)
    try:
        together = await media.load_images(refs, card(), model="m", input_size=target)
        assert len(decoder.worker_pids()) == 2  # both slots decoded at once
        in_turn = [await media.load_image(r, card(), model="m", input_size=target) for r in refs]
    finally:
        await media.aclose()
    limits = media.limits_for(card())
    for blob, a, b in zip(blobs, together, in_turn, strict=True):
        alone = run_job(DecodeJob(blob, limits, "p", input_size=target))
        assert min(a.size) == 112 and a.size == b.size == alone.size
        assert a.tobytes() == b.tobytes() == alone.tobytes()
