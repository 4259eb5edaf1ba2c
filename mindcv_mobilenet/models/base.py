"""What every MobileNet shares: a ``features`` trunk, global pooling, a classifier whose last layer can be swapped."""

from __future__ import annotations

from mindspore import Tensor, nn

from .layers import GlobalAvgPool, init_weights


class MobileNetBase(nn.Cell):
    """Common head and helpers; subclasses build ``self.features`` and call :meth:`_build_head`.

    ``classifier_name`` is the dotted name of the last ``nn.Dense`` (``classifier`` or ``classifier.1``), the one that
    is dropped or replaced when the number of classes changes.
    """

    classifier_name: str = "classifier"

    def _build_head(self, head_layers: list[nn.Cell], num_features: int, num_classes: int) -> None:
        self.num_features = num_features
        self.num_classes = num_classes
        self.pool = GlobalAvgPool()
        last = nn.Dense(num_features, num_classes)
        self.classifier = nn.SequentialCell(head_layers + [last]) if head_layers else last
        init_weights(self)

    def get_classifier(self) -> nn.Dense:
        """The final linear layer."""
        if isinstance(self.classifier, nn.SequentialCell):
            return self.classifier[len(self.classifier) - 1]
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer with a freshly initialised one for ``num_classes`` classes."""
        new_layer = nn.Dense(self.num_features, num_classes)
        if isinstance(self.classifier, nn.SequentialCell):
            layers = list(self.classifier.cell_list)[:-1] + [new_layer]
            self.classifier = nn.SequentialCell(layers)
        else:
            self.classifier = new_layer
        self.num_classes = num_classes
        init_weights(new_layer)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(x))

    def construct(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
