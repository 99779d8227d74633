"""Lip closures from the sound: a small detector that hears p, b and m, and the step that closes the lips there."""
