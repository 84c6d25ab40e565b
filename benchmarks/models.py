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

#: The paper's vision projector (flat -> 2048 -> 2048 -> 2048). VGG's first block outputs a
#: 256 x 16 x 16 map: without a projector the local loss would need a 65,536-wide covariance.
#: With it, DeInfoReg on VGG has 265 M parameters (the flat -> 2048 layers dominate) against
#: 22 M for BP, which matters for the memory comparison (Table 8).
PAPER_PROJECTOR = (2048, 2048, 2048)

#: name -> (blocks, projector)
MODELS = {"vgg": (VGG, PAPER_PROJECTOR), "reduced-vgg": (REDUCED_VGG, None)}
