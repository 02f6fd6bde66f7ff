require('./check-price.cjs').checkPrice('apples', 3)
