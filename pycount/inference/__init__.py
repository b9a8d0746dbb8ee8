"""Counting an image with a trained run: engines (pycaffe, cv2.dnn), predictors, the
sliding-window density map (griddata), the shared-trunk and fully convolutional paths, and
`pycount count`."""
