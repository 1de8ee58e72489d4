"""The label convention shared by data, training, models and guidance.

Class labels are ``int64`` tensors of shape ``(B,)`` with values in ``[0, num_classes)``.
``NULL_LABEL`` marks "no label": classifier-free guidance trains with some labels replaced by it
and samples the unconditional branch with it. A network with ``num_classes = K`` keeps ``K + 1``
label embeddings, the last one for ``NULL_LABEL``.
"""

NULL_LABEL = -1
