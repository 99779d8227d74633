"""DualFace engine: audio, data, model, training and inference. Never imports bpy.

Heavy modules (torch) are imported lazily so that light callers -- the Blender add-on, the
corpus writer -- can use the data types without paying for the model.
"""

__version__ = "0.1.0"
