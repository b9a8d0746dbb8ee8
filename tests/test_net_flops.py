"""bench.net_flops: multiply-adds of a deploy net's convolutions (issue #22's compute bounds)."""
from bench import net_flops

NET = """
name: "t"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
  convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "c2" top: "up"
  convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 4 bias_term: false } }
"""


def test_multiply_adds_of_convolutions_and_deconvolutions(tmp_path):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(NET)
    c1 = 8 * 8 * 4 * 3 * 9            # 8x8 outputs x 4 channels x (3 inputs x 3x3)
    c2 = 4 * 4 * 4 * 2 * 9            # stride 2: 4x4 outputs, groups of 2 input channels
    up = 4 * 4 * 4 * 1 * 16           # each of c2's 4x4x4 values scattered by a 4x4 kernel
    assert net_flops.conv_macs(str(deploy), 8) == c1 + c2 + up
    # at twice the side every layer costs four times as much
    assert net_flops.conv_macs(str(deploy), 16) == 4 * (c1 + c2 + up)
