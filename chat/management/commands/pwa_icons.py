"""``manage.py pwa_icons``: draw the installable app's icons into ``static/chat/icons/``.

The icons are committed; run this again only after changing the design below (a test
checks that the committed files are what this draws). The mark is the brand's four-pointed
star (✦, as in the page's header) in white on the accent colour of ``chat.css``
(``--accent``). Each file, as the web app manifest (W3C "Web Application Manifest",
``icons`` member) and Apple's ``apple-touch-icon`` expect it:

- ``icon.svg``: any size, rounded square, transparent corners (``purpose: any``);
- ``icon-192.png``, ``icon-512.png``: the same, drawn by Pillow;
- ``icon-maskable-192.png``, ``icon-maskable-512.png``: full-bleed square, the star inside
  the maskable safe zone (the centred circle of 40 % of the size in radius), for
  launchers that cut their own shape (``purpose: maskable``);
- ``apple-touch-icon.png``: 180 x 180, full-bleed (iOS rounds the corners itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from PIL import Image, ImageDraw

ACCENT = "#4f46e5"  # chat.css --accent (light theme)
MARK = "#ffffff"
VIEWBOX = 512  # the design's units: one icon is VIEWBOX x VIEWBOX
CORNER = 112  # radius of the rounded square's corners, in design units
# The star: four tips joined by inward-curving sides, each a quadratic Bézier curve
# (start, control, end) in design units; drawn clockwise from the top tip.
STAR = (
    ((256, 88), (284, 228), (424, 256)),
    ((424, 256), (284, 284), (256, 424)),
    ((256, 424), (228, 284), (88, 256)),
    ((88, 256), (228, 228), (256, 88)),
)
SUPERSAMPLE = 4  # drawn this many times larger, then scaled down: smooth edges
CURVE_STEPS = 48  # straight segments per curved side

# File name -> (pixel size, maskable: full-bleed square instead of a rounded one).
PNG_ICONS: dict[str, tuple[int, bool]] = {
    "icon-192.png": (192, False),
    "icon-512.png": (512, False),
    "icon-maskable-192.png": (192, True),
    "icon-maskable-512.png": (512, True),
    "apple-touch-icon.png": (180, True),
}
SVG_ICON = "icon.svg"
ICONS_DIR = Path(settings.BASE_DIR) / "static" / "chat" / "icons"


def icon_svg() -> str:
    """The rounded-square icon as an SVG document (UTF-8 text, no XML declaration)."""
    path = f"M{STAR[0][0][0]} {STAR[0][0][1]}" + "".join(
        f" Q{cx} {cy} {ex} {ey}" for _start, (cx, cy), (ex, ey) in STAR
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {VIEWBOX} {VIEWBOX}" '
        f'width="{VIEWBOX}" height="{VIEWBOX}">'
        f'<rect width="{VIEWBOX}" height="{VIEWBOX}" rx="{CORNER}" fill="{ACCENT}"/>'
        f'<path d="{path}Z" fill="{MARK}"/></svg>\n'
    )


def _star_points(scale: float) -> list[tuple[float, float]]:
    """The star's outline as polygon points, in pixels of a drawing ``scale`` times the
    design's size."""
    points: list[tuple[float, float]] = []
    for (sx, sy), (cx, cy), (ex, ey) in STAR:
        for step in range(CURVE_STEPS):
            t = step / CURVE_STEPS
            u = 1 - t
            x = u * u * sx + 2 * u * t * cx + t * t * ex
            y = u * u * sy + 2 * u * t * cy + t * t * ey
            points.append((x * scale, y * scale))
    return points


def icon_png(size: int, *, maskable: bool) -> Image.Image:
    """The icon as an RGBA image of ``size`` x ``size`` pixels: full-bleed when
    ``maskable``, else a rounded square with transparent corners."""
    big = size * SUPERSAMPLE
    scale = big / VIEWBOX
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if maskable:
        draw.rectangle((0, 0, big, big), fill=ACCENT)
    else:
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=CORNER * scale, fill=ACCENT)
    draw.polygon(_star_points(scale), fill=MARK)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def write_icons(directory: Path) -> list[Path]:
    """Draw every icon into ``directory`` (created if needed); returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (size, maskable) in PNG_ICONS.items():
        path = directory / name
        icon_png(size, maskable=maskable).save(path, optimize=True)
        written.append(path)
    svg = directory / SVG_ICON
    svg.write_text(icon_svg(), encoding="utf-8")
    written.append(svg)
    return written


class Command(BaseCommand):
    help = "Draw the installable web app's icons (static/chat/icons/)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=ICONS_DIR,
            help=f"Directory to write the icons to (default {ICONS_DIR}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for path in write_icons(options["output"]):
            self.stdout.write(f"Wrote {path}")
