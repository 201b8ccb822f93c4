"""Image data for transferkit: any input form into one `ImageSource`, checked and split."""

from transferkit.data.file_inputs import IMAGE_EXTENSIONS
from transferkit.data.pipeline import make_dataset
from transferkit.data.scan import scan_images
from transferkit.data.source import ImageSource, as_image_source
from transferkit.data.split import stratified_split

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageSource",
    "as_image_source",
    "make_dataset",
    "scan_images",
    "stratified_split",
]
