"""Small CNNs written out in full (no timm): fast on a CPU, the seeds' baseline."""

from __future__ import annotations

from kit.errors import KitError
from kit.models.registry import register


def _block(cin: int, cout: int):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )


def conv_net(widths: tuple[int, ...], num_classes: int, in_chans: int, drop_rate: float):
    """conv-BN-ReLU-maxpool blocks, global average + max pooling, dropout, linear head."""
    from torch import nn

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = (in_chans, *widths)
            self.features = nn.Sequential(*(_block(a, b) for a, b in zip(chans, chans[1:])))
            self.drop = nn.Dropout(drop_rate)
            self.head = nn.Linear(widths[-1], num_classes)

        def forward(self, x):
            x = self.features(x)
            x = x.mean(dim=(2, 3)) + x.amax(dim=(2, 3))
            return self.head(self.drop(x))

    return ConvNet()


@register("cnn4", "4 conv-BN-ReLU-pool blocks (32-64-128-256), as seed C")
def cnn4(num_classes: int, in_chans: int, drop_rate: float, stem: str, pretrained: bool | str):
    if pretrained:
        raise KitError("cnn4 has no pretrained weights: set pretrained to false")
    return conv_net((32, 64, 128, 256), num_classes, in_chans, drop_rate)
