"""espeak-ng text to speech through a ctypes binding to espeakng-loader's library."""
