"""Images: sniff, decode within limits, ingest image_url parts, edit masks, encode outputs."""
