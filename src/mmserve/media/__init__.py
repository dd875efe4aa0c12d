"""Every byte a user sends, made safe; every file the server returns, encoded.

- ``net/``: the SSRF-safe fetcher (``fetch.py``) and its address policy (``policy.py``);
- ``image/``: sniffing, bounded decoding, ingestion of ``image_url`` parts, edit masks, encoding;
- ``audio/``: bounded decoding of uploads, resampling and tempo, streaming encoders;
- ``video/``: MP4, thumbnail and spritesheet encoding of generated frames;
- here: data URIs (``datauri.py``) and the isolated decode workers (``decoder.py`` runs
  ``decodejob.py`` jobs in ``worker.py`` processes).

The media layer sits below engines and the catalog: it imports neither (it reads a card's
limits through small protocols) and raises :mod:`mmserve.errors`.
"""
