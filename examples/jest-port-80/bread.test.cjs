require('./check-price.cjs').checkPrice('bread', 2)
