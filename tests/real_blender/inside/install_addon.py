"""Install the built extension zip into this Blender (a test's BLENDER_USER_RESOURCES) and set the
engine to the External Python worker: blender -b --python install_addon.py -- ZIP PYTHON"""

from __future__ import annotations

import sys

import bpy

zip_path, python = sys.argv[sys.argv.index("--") + 1 :][:2]
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
addon = bpy.context.preferences.addons.get("bl_ext.user_default.dualface")
if addon is None:
    raise SystemExit("the DualFace extension did not install")
addon.preferences.engine_mode = "WORKER"
addon.preferences.external_python = python
bpy.context.preferences.use_preferences_save = False
bpy.context.preferences.view.show_splash = False  # the UI tests look at the viewport
bpy.ops.wm.save_userpref()
print("DUALFACE_INSTALLED", bpy.app.version_string)
