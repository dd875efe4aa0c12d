"""What all the images of one request may add up to: bytes received and source pixels decoded.

Each image is bounded on its own (``ImageLimits``, ``FetchSettings.max_bytes``); without a
total, one request of 32 links to 32 MiB images would fetch 1 GiB, and 32 images of
4000x4000 would decode half a billion pixels. An :class:`ImageBudget` is made per request
(``limits.max_request_image_bytes`` / ``max_request_image_pixels``, tightened by the card) and
charged as images arrive: a fetch is charged chunk by chunk (and stops the moment the total is
spent), a data URI by its decoded size before decoding, an image's pixels once its decode
reports them; each decode may also use only what is left (refused from its header otherwise).
Images of one request load concurrently, so the totals are checked as they settle: a request
over either total is refused with 413 ``request_images_too_large``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmserve.errors import PayloadTooLargeError


@dataclass
class ImageBudget:
    max_bytes: int
    max_pixels: int
    bytes_used: int = 0
    pixels_used: int = 0

    @property
    def bytes_left(self) -> int:
        return max(0, self.max_bytes - self.bytes_used)

    @property
    def pixels_left(self) -> int:
        return max(0, self.max_pixels - self.pixels_used)

    def charge_bytes(self, n: int, *, param: str) -> None:
        self.bytes_used += n
        if self.bytes_used > self.max_bytes:
            raise self.bytes_exceeded(param)

    def charge_pixels(self, n: int, *, param: str) -> None:
        self.pixels_used += n
        if self.pixels_used > self.max_pixels:
            raise pixels_exceeded(self.max_pixels, param)

    def bytes_exceeded(self, param: str) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"The images of this request add up to more than {self.max_bytes} bytes, the limit for one request "
            "(limits.max_request_image_bytes); send fewer or smaller images.",
            param=param,
            code="request_images_too_large",
        )


def pixels_exceeded(max_pixels: int, param: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The images of this request add up to more than {max_pixels} pixels, the limit for one request "
        "(limits.max_request_image_pixels); send fewer or smaller images.",
        param=param,
        code="request_images_too_large",
    )
