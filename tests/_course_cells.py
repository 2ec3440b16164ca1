"""What several course-cell tests share: the optimizer cells' expected arrays, and
the dropout forward cell.

The optimizer arrays are the same in CS231n (2017-2022) and UCLA nndl: w =
linspace(-0.4, 0.6, 20), dw = linspace(-0.6, 0.4, 20) as (4, 5), state from
linspace(0.6, 0.9, 20) (and linspace(0.7, 0.5, 20) for Adam's second moment). The
numbers are the courses'; CS231n's rmsprop state is nndl's ``a``, its Adam ``m``, ``v``
are nndl's ``v``, ``a``."""
import numpy as np
import pytest

N, D = 4, 5
W = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
DW = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
STATE = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
SECOND_MOMENT = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)

MOMENTUM_NEXT_W = [[0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
                   [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
                   [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
                   [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]]
NESTEROV_NEXT_W = [[0.08714, 0.15246105, 0.21778211, 0.28310316, 0.34842421],
                   [0.41374526, 0.47906632, 0.54438737, 0.60970842, 0.67502947],
                   [0.74035053, 0.80567158, 0.87099263, 0.93631368, 1.00163474],
                   [1.06695579, 1.13227684, 1.19759789, 1.26291895, 1.32824]]
VELOCITY = [[0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
            [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
            [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
            [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]]
RMSPROP_NEXT_W = [[-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
                  [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
                  [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
                  [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]]
RMSPROP_CACHE = [[0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
                 [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
                 [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
                 [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]]
ADAM_NEXT_W = [[-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
               [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
               [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
               [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]]
ADAM_SECOND = [[0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
               [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
               [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
               [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]]
ADAM_FIRST = [[0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
              [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
              [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
              [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]]
#: What the cells print: rel_error of the results against the 8-digit arrays above.
PRINTED = {"momentum": (8.882347033505819e-09, 4.269287743278663e-09),
           "nesterov": (1.0875186845081027e-08, 4.269287743278663e-09),
           "rmsprop": (9.524687511038133e-08, 2.6477955807156126e-09),
           "adam": (1.1395691798535431e-07, 4.208314038113071e-09, 4.214963193114416e-09)}


def dropout_forward_cell(dropout_forward, printed):
    """The Dropout notebook's forward cell: seed 231, x = randn(500, 500) + 10, then for
    each p a train-mode and a test-mode call. ``printed`` maps p to the course's
    (train-time mean, fraction zeroed)."""
    np.random.seed(231)
    x = np.random.randn(500, 500) + 10
    for p, (train_mean, zero_fraction) in printed.items():
        out, _ = dropout_forward(x, {"mode": "train", "p": p})
        out_test, _ = dropout_forward(x, {"mode": "test", "p": p})
        assert (out == 0).mean() == zero_fraction
        # the last printed digit of a mean of 250,000 numbers depends on NumPy's summation order
        assert out.mean() == pytest.approx(train_mean, rel=1e-13)
        np.testing.assert_array_equal(out_test, x)


def dropout_backward_cell(dropout_forward, dropout_backward, p):
    """The Dropout notebook's backward cell: seed 231, x = randn(10, 10) + 10, a fixed
    mask (seed 123); returns dropout_backward's relative error against central differences."""
    from normlab.gradient_check import eval_numerical_gradient_array, rel_error
    np.random.seed(231)
    x = np.random.randn(10, 10) + 10
    dout = np.random.randn(*x.shape)
    dropout_param = {"mode": "train", "p": p, "seed": 123}
    _, cache = dropout_forward(x, dropout_param)
    dx_num = eval_numerical_gradient_array(lambda xx: dropout_forward(xx, dropout_param)[0], x, dout)
    return rel_error(dropout_backward(dout, cache), dx_num)
