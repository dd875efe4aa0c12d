"""Video: encode generated frames as MP4, thumbnail and spritesheet."""
