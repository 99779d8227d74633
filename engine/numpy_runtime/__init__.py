"""DualFace inference in numpy alone: the engine's backend where torch is absent or not worth loading.

A stock Blender ships numpy, so the add-on animates in-process with nothing to install; on CPU the
CLI and worker use it too, since importing torch alone costs more than a whole take. Nothing in this
package, or in what it imports, imports torch (tests/test_numpy_runtime.py checks with an import
hook). See docs/numpy-runtime.md.
"""
