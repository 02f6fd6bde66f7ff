require('./check-price.cjs').checkPrice('coffee', 9)
