"""Read the multipart form of POST /v1/images/edits with bounds on every part.

Starlette parses the body as it streams in (the app's body cap applies), keeps text parts
under ``MAX_FIELD_BYTES`` in memory and spools files to disk past 1 MiB; each file is read
into memory only after its size was checked against the per-image byte limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from mmserve.api.forms import form_error
from mmserve.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError, clip
from mmserve.settings import LimitSettings

MAX_FIELD_BYTES = 256 * 1024  # a text field (the prompt is at most 32000 characters)
MAX_FIELDS = 64
IMAGE_KEYS = ("image", "image[]")


@dataclass
class Upload:
    param: str
    data: bytes
    filename: str | None = None


@dataclass
class EditForm:
    fields: dict[str, str] = field(default_factory=dict)
    images: list[Upload] = field(default_factory=list)
    mask: Upload | None = None


async def read_edit_form(request: Request, limits: LimitSettings, *, endpoint: str = "/v1/images/edits") -> EditForm:
    ctype = request.headers.get("content-type", "")
    # a urlencoded form cannot carry files, but parsing it gives the clearer "'image' is required"
    if not ctype.lower().startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        if endpoint.endswith("edits"):
            what = (
                "multipart/form-data (the image file(s) as 'image' or 'image[]', an optional 'mask' file, the other "
                "fields as text parts) or JSON (images: [{image_url}], mask: {image_url})"
            )
        else:
            what = "multipart/form-data: the image file as 'image', the other fields as text parts"
        raise UnsupportedMediaError(
            f"POST {endpoint} takes {what}. Got Content-Type '{ctype or 'none'}'.", code="invalid_content_type"
        )
    max_files = limits.max_images_per_request + 1  # + the mask
    try:
        form = await request.form(max_files=max_files, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
    except HTTPException as e:
        if e.status_code != 400:  # the body cap (413): shaped by the app's handlers
            raise
        files = f"at most {max_files - 1} images and one mask"
        raise form_error(
            str(e.detail), files=files, file_param="image", max_fields=MAX_FIELDS, max_field_bytes=MAX_FIELD_BYTES
        ) from None
    out = EditForm()
    try:
        items = form.multi_items()
        n_images = sum(1 for k, _ in items if k in IMAGE_KEYS)
        for key, value in items:
            if key in IMAGE_KEYS or key == "mask":
                if not isinstance(value, UploadFile):
                    raise InvalidRequestError(
                        f"'{clip(key)}' must be a file part (an uploaded image), not a text field.",
                        param=key.rstrip("[]"),
                    )
                if key == "mask":
                    if out.mask is not None:
                        raise InvalidRequestError("Send at most one 'mask'.", param="mask")
                    out.mask = await _read(value, "mask", limits)
                else:
                    param = "image" if n_images == 1 else f"image[{len(out.images)}]"
                    out.images.append(await _read(value, param, limits))
            elif isinstance(value, str):
                out.fields[key] = value
            # other file parts are not ours: ignored, like unknown text fields
    finally:
        await form.close()
    return out


async def _read(upload: UploadFile, param: str, limits: LimitSettings) -> Upload:
    cap = limits.max_data_uri_bytes
    if upload.size is not None and upload.size > cap:
        raise PayloadTooLargeError(f"The file is {upload.size} bytes; the limit per image is {cap} bytes.", param=param)
    data = await upload.read(cap + 1)
    if len(data) > cap:
        raise PayloadTooLargeError(f"The file is larger than the {cap} byte limit per image.", param=param)
    return Upload(param=param, data=data, filename=upload.filename)
