"""Inference machinery behind `engine.api.Engine`: device choice, emotion schedules, chunked decoding, streaming."""
