"""Audio: decode uploads within limits, resample, change tempo, encode streamed speech."""
