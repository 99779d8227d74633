"""MediaPipe face-mesh landmark ids that name anatomy (facts from MediaPipe's FACEMESH_* sets).

"Left"/"right" are the subject's own sides, as in MediaPipe and ARKit; in Blender axes the
subject's left is +x. Rows run from the subject's right to left (lips) or outer to inner (eyes).
Lip rows exclude the mouth corners so that the upper and lower lip sets are disjoint.
"""

from __future__ import annotations

# Lips: outer contour (vermilion border) and inner contour (where the lips meet), corners excluded.
LIP_UPPER_OUTER = (185, 40, 39, 37, 0, 267, 269, 270, 409)
LIP_LOWER_OUTER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
LIP_UPPER_INNER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LIP_LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)  # each faces LIP_UPPER_INNER[i]
# Mouth corners from the outer contour inwards, on the subject's right and left.
MOUTH_CORNER_RIGHT = (61, 76, 62, 78)
MOUTH_CORNER_LEFT = (291, 306, 292, 308)

# Eyelid margins (row 0, on the eye opening) and the fold above/below them (row 1), corners apart.
EYE_CORNERS_LEFT = (263, 362)  # outer, inner
EYE_CORNERS_RIGHT = (33, 133)
EYELID_UPPER_LEFT_0 = (466, 388, 387, 386, 385, 384, 398)
EYELID_LOWER_LEFT_0 = (249, 390, 373, 374, 380, 381, 382)  # each faces EYELID_UPPER_LEFT_0[i]
EYELID_UPPER_LEFT_1 = (467, 260, 259, 257, 258, 286, 414)
EYELID_LOWER_LEFT_1 = (359, 255, 339, 254, 253, 252, 256, 341, 463)
EYELID_UPPER_RIGHT_0 = (246, 161, 160, 159, 158, 157, 173)
EYELID_LOWER_RIGHT_0 = (7, 163, 144, 145, 153, 154, 155)
EYELID_UPPER_RIGHT_1 = (247, 30, 29, 27, 28, 56, 190)
EYELID_LOWER_RIGHT_1 = (130, 25, 110, 24, 23, 22, 26, 112, 243)
# Third ring around the eye (upper: under the brow; lower: top of the cheek).
EYE_RING_UPPER_LEFT_2 = (342, 445, 444, 443, 442, 441, 413)
EYE_RING_LOWER_LEFT_2 = (446, 261, 448, 449, 450, 451, 452, 453, 464)
EYE_RING_UPPER_RIGHT_2 = (113, 225, 224, 223, 222, 221, 189)
EYE_RING_LOWER_RIGHT_2 = (226, 31, 228, 229, 230, 231, 232, 233, 244)

# Eyebrows, outer to inner.
BROW_UPPER_LEFT = (383, 300, 293, 334, 296, 336, 285, 417)
BROW_LOWER_LEFT = (265, 353, 276, 283, 282, 295)
BROW_UPPER_RIGHT = (156, 70, 63, 105, 66, 107, 55, 193)
BROW_LOWER_RIGHT = (35, 124, 46, 53, 52, 65)

# Face outline, clockwise from the top of the forehead.
# fmt: off
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
# fmt: on

# Midline and other single points.
NOSE_TIP = 1
NOSE_BOTTOM = 2  # subnasale
NOSE_BRIDGE = 168  # between the eyes
NOSE_ALA_LEFT = 327
NOSE_ALA_RIGHT = 98
CHIN = 152  # menton, lowest point of the chin
FOREHEAD_CENTER = 151
UPPER_LIP_TOP = 0
LOWER_LIP_BOTTOM = 17
CHEEK_LEFT = 425
CHEEK_RIGHT = 205
