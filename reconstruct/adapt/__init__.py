"""Cross-volume adaptation (SECGAN, Januszewski & Jain 2019): image-to-image generators that
translate a new volume's images into the style the segmenter was trained on (`model`), each
starting from a grey-level curve (`intensity`), trained unpaired with adversarial, cycle and
segmentation-consistency losses (`training`), and run blockwise before the segmenter
(`stage`)."""
