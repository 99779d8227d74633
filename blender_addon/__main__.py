"""`python -m blender_addon animate ...`: the headless command through the bpy module, no Blender binary needed.

Blender itself runs the same entry point as `blender -b -c dualface animate ...`.
"""

import sys

import blender_addon
from blender_addon import headless

if __name__ == "__main__":
    blender_addon.register()
    try:
        code = headless.main(sys.argv[1:])
    finally:
        blender_addon.unregister()
    sys.exit(code)
