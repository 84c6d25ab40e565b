"""Block lists shared by the benchmarks."""

from deinforeg_sklearn.blocks import Conv

#: The paper's VGG for 32 x 32 colour images: 4 blocks (channel configuration from the authors' code).
VGG = [Conv((128, 128, 128, 256, "M")), Conv((256, 512, "M")), Conv((512, 512, "M")), Conv((512, "M"))]

#: A VGG that trains at a few hundred images per second on one CPU core. Its blocks have equal
#: multiply-adds (about 5 M per image each) and measured step costs of 125 / 53 / 36 / 42 ms
#: (batch 128, 1 thread), so two stages ([1, 3]) can approach 2x. Heads read a 2 x 2 pooled map.
REDUCED_VGG = [
    Conv((16, 32, "M"), head_pool=2),
    Conv((64, "M"), head_pool=2),
    Conv((128, "M"), head_pool=2),
    Conv((256, "M"), head_pool=2),
]

MODELS = {"vgg": VGG, "reduced-vgg": REDUCED_VGG}
