"""The nets: NetSpec builders (AlexNet, ResNets, fcrn; R and C heads), prototxt writing, and the
surgery that loads ImageNet weights into them."""
