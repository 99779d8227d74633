"""The add-on's logic that needs no Blender: naming, channel matching, timing, the vertex basis, jobs.

Kept free of bpy (like the glTF add-on's io/ half) so it can be unit-tested and reasoned about
without a scene, and so the Blender glue modules stay thin.
"""
