"""diffusers text-to-image, image-to-image and inpainting: the engine and its card options."""
